//! End-to-end compositions: the layer around a hyper-util client (HTTP/1 and HTTP/2), a tonic
//! channel used by a generated client, an axum `Router` and an axum gateway; the organization
//! list, per-request organizations and configuration from the environment. Every server is real
//! and listens on 127.0.0.1.

mod axum_gateway;
mod axum_router;
mod common;
mod from_env;
mod hyper_client;
#[path = "../support/logs.rs"]
mod logs;
mod organizations;
mod tonic_client;
