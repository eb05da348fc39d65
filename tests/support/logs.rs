//! Log capture for the tests that check what is (and is not) logged; shared by the test binaries.

use std::sync::{Arc, Mutex};

/// Captures every log line emitted on this thread (use a current-thread runtime).
pub fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    // Tests run in parallel, and a callsite first hit on a thread with no subscriber while no
    // subscriber existed anywhere caches "never interested": its events would then be lost to
    // a capture started later. A global subscriber that takes everything and writes nothing keeps
    // every callsite interested; each capturing thread's own subscriber still gets its events.
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || LogWriter(writer.clone()))
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Tests on other threads, without a subscriber, may have cached "no interest" for the crate's
    // callsites: ask again now that this thread has one.
    tracing::callsite::rebuild_interest_cache();
    (buffer, guard)
}

/// Appends to the shared buffer.
pub struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything captured so far.
pub fn text(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}
