//! Hardening tests (issue 5): the middleware must never be the thing that fails, leaks or hangs.
//!
//! - `faults`: the fault matrix over real HTTP against the fake server (and a TCP proxy of our
//!   own for connection-level faults), each case a test with its bound on logins.
//! - `revoke_storm`: tokens revoked in a loop while 100 tasks send requests for 10 s.
//! - `backoff`: `Retry-After` under paused time.
//! - `secrets`: every public type, every error variant, every log line, with a known password and
//!   token; the `http://` refusal end to end.
//! - `scoping`: a second real server never sees the credentials when the option is on.
//! - `cancellation`: dropped callers, shutdown during a login, nothing left running.
//!
//! The property tests live in `src/proptests.rs`; the memory test in `tests/memory.rs`.

mod backoff;
mod cancellation;
mod common;
mod faults;
#[path = "../support/logs.rs"]
mod logs;
mod proxy;
mod revoke_storm;
mod scoping;
mod secrets;
