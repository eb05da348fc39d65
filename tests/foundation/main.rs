//! End-to-end tests of the foundation: real hyper-util clients, the real fake MeshX server on
//! 127.0.0.1, real tokens with short lifetimes.

mod bounds;
mod common;
mod headers;
mod lifecycle;
mod login;
#[path = "../support/logs.rs"]
mod logs;
mod mock;
mod outage;
mod refresh;
mod retry;
mod secrets;
mod static_token;
