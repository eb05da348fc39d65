//! Per-thread copies of what every request clones, so that the request path touches no counter
//! that another core is writing.
//!
//! Cloning a `HeaderValue` built at run time, or an `Arc`, is an atomic increment of a counter
//! shared by every clone; when every request on every core clones the same one, that cache line
//! bounces between cores and dominates the cost of the middleware (profiled: ~20 ns a clone at 2
//! cores, four of them per request). Each thread therefore keeps its own copy of the current
//! `Authorization` value (re-made once per token and thread) and its own handle on the shared
//! state. The `x-org` value needs no copy: it is a `&'static` interned once per organization name.

use crate::shared::Shared;
use http::HeaderValue;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};

/// A handle on the shared state, one per thread: what a response future keeps for the rare 401.
/// Weak, so that a thread's copy never keeps a dropped `MeshxAuth` (and its refresher) alive.
#[derive(Debug)]
pub(crate) struct Handle(Weak<Shared>);

impl Handle {
    /// The shared state, unless every `MeshxAuth`, layer and service has been dropped.
    pub(crate) fn shared(&self) -> Option<Arc<Shared>> {
        self.0.upgrade()
    }
}

struct Slot {
    id: u64,
    generation: u64,
    authorization: HeaderValue,
    handle: Arc<Handle>,
}

thread_local! {
    static SLOT: RefCell<Option<Slot>> = const { RefCell::new(None) };
}

/// This thread's copy of the `Authorization` value of the credential of `generation`, with that
/// generation, and (when `handle`) this thread's handle on `shared`. `None` when the current
/// credential may not be sent (expired).
#[inline]
pub(crate) fn authorization(
    shared: &Arc<Shared>,
    generation: u64,
    handle: bool,
) -> Option<(HeaderValue, u64, Option<Arc<Handle>>)> {
    SLOT.try_with(|slot| {
        // Nothing below calls out of this module: the borrow cannot be re-entered.
        let mut slot = slot.borrow_mut();
        if let Some(s) = &*slot
            && s.id == shared.id
            && s.generation == generation
        {
            return Some((
                s.authorization.clone(),
                generation,
                handle.then(|| s.handle.clone()),
            ));
        }
        // A new token (or another MeshxAuth): copy it once for this thread.
        let credential = shared.cell.load();
        if credential.is_expired() {
            return None;
        }
        let own = match &*slot {
            Some(s) if s.id == shared.id => s.handle.clone(),
            _ => self::handle(shared),
        };
        let authorization = private_copy(&credential.authorization);
        *slot = Some(Slot {
            id: shared.id,
            generation: credential.generation,
            authorization: authorization.clone(),
            handle: own.clone(),
        });
        Some((authorization, credential.generation, handle.then_some(own)))
    })
    .unwrap_or_else(|_| {
        // The thread is exiting and its locals are gone: use the shared values.
        let credential = shared.cell.load();
        (!credential.is_expired()).then(|| {
            (
                credential.authorization.clone(),
                credential.generation,
                handle.then(|| self::handle(shared)),
            )
        })
    })
}

/// A handle on `shared` (for the rare paths).
pub(crate) fn handle(shared: &Arc<Shared>) -> Arc<Handle> {
    Arc::new(Handle(Arc::downgrade(shared)))
}

/// A copy with its own buffer (and so its own reference count).
fn private_copy(value: &HeaderValue) -> HeaderValue {
    let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
    copy.set_sensitive(value.is_sensitive());
    copy
}

/// A `&'static` copy of `name`, made once per distinct name for the life of the process, so that
/// `x-org` values clone without touching any counter.
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(existing) = names.get(name) {
        return existing;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}
