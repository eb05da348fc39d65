//! A small TCP proxy in front of the fake's IAM, switchable between forwarding, refusing
//! connections (the listening socket is closed: connects get `ECONNREFUSED`; open connections are
//! reset) and black-holing them (connections are accepted and never answered).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    Refuse,
    BlackHole,
}

pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    /// Cancelled to close the listener and every connection of the current mode.
    current: Mutex<CancellationToken>,
    mode: Mutex<Mode>,
    accepted: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Proxy {
            addr,
            upstream,
            current: Mutex::new(CancellationToken::new()),
            mode: Mutex::new(Mode::Forward),
            accepted: Default::default(),
        };
        proxy.serve(listener, Mode::Forward);
        proxy
    }

    /// `http://127.0.0.1:PORT/api`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    fn serve(&self, listener: TcpListener, mode: Mode) {
        let stop = self.current.lock().unwrap().clone();
        let upstream = self.upstream;
        let accepted = self.accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    _ = stop.cancelled() => return, // drops the listener
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(_) => continue,
                    },
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let stop = stop.clone();
                tokio::spawn(async move {
                    match mode {
                        Mode::Forward => {
                            let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                                return;
                            };
                            tokio::select! {
                                _ = stop.cancelled() => {}
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            }
                        }
                        Mode::BlackHole => {
                            // Read and discard: the client's request is accepted, never answered.
                            let mut sink = [0u8; 1024];
                            loop {
                                tokio::select! {
                                    _ = stop.cancelled() => break,
                                    n = inbound.read(&mut sink) => if matches!(n, Ok(0) | Err(_)) { break },
                                }
                            }
                        }
                        Mode::Refuse => {}
                    }
                    // Reset rather than close politely.
                    let _ = inbound.set_zero_linger();
                });
            }
        });
    }

    /// Switches modes: every open connection is reset, and the listener is closed (`Refuse`) or
    /// bound again on the same port.
    pub async fn set_mode(&self, mode: Mode) {
        let old = std::mem::replace(&mut *self.current.lock().unwrap(), CancellationToken::new());
        old.cancel();
        *self.mode.lock().unwrap() = mode;
        if mode == Mode::Refuse {
            // Wait until the port really refuses.
            for _ in 0..200 {
                if TcpStream::connect(self.addr).await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            panic!("the proxy port still accepts connections");
        }
        let mut listener = None;
        for _ in 0..200 {
            match TcpListener::bind(self.addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
        self.serve(listener.expect("rebind the proxy port"), mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.current.lock().unwrap().cancel();
    }
}
