//! Tower middleware that authenticates requests to the MeshX Foundation API.
//!
//! Every request to the MeshX API carries two headers: `Authorization: Bearer <access token>`
//! and `x-org: <organization name>`. [`MeshxAuthLayer`] adds both to any
//! `tower::Service<http::Request<B>>`: a hyper-util client, a tonic channel, an axum router.
//!
//! - The token sits in a lock-free cell ([`arc_swap`]); a request reads it without a lock, an
//!   await or an allocation, and the header values are built once per token.
//! - A background task logs in again before the token expires (`POST {api}/iam/login`), backing
//!   off with jitter when the IAM fails, and healing when it comes back.
//! - A 401 (or gRPC `UNAUTHENTICATED`) triggers one shared refresh, however many requests saw it,
//!   and one replay of each request whose body can be sent again.
//! - Secrets never show in `Debug`, `Display`, errors or logs; the headers are marked sensitive.
//!
//! ```no_run
//! use http_body_util::Empty;
//! use bytes::Bytes;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # async fn demo() -> Result<(), tower::BoxError> {
//! let auth = meshx_auth::MeshxAuth::builder()
//!     .credentials("alice", "correct horse battery staple")
//!     .org("acme")
//!     .build()
//!     .await?;
//!
//! // Any service of `http::Request`s; here a stand-in for a hyper client.
//! let client = tower::service_fn(|req: http::Request<Empty<Bytes>>| async move {
//!     assert!(req.headers().contains_key("authorization"));
//!     Ok::<_, std::convert::Infallible>(http::Response::new(()))
//! });
//! let mut client = ServiceBuilder::new().layer(auth.layer()).service(client);
//!
//! let request = http::Request::get("https://api.meshx.foundation/api/iam/organization/list")
//!     .body(Empty::new())?;
//! let response = client.ready().await?.call(request).await?;
//! # let _ = response; Ok(()) }
//! ```
//!
//! Failures of the middleware itself (no valid token could be had, shut down) come out of the
//! service as a [`tower::BoxError`] that downcasts to [`Error`]; answers of the API, including a
//! final 401, come out as responses.
#![deny(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod backoff;
mod builder;
mod credential;
mod error;
mod future;
mod jwt;
mod layer;
mod local;
mod login;
mod organization;
#[cfg(test)]
mod proptests;
mod refresher;
mod replay;
mod scope;
mod service;
mod shared;
mod source;
mod status;

#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;

pub use auth::MeshxAuth;
pub use backoff::{DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP, MAX_RETRY_AFTER};
pub use builder::{
    DEFAULT_API_URL, DEFAULT_LOGIN_TIMEOUT, DEFAULT_REFRESH_JITTER, DEFAULT_REFRESH_MARGIN,
    MeshxAuthBuilder,
};
pub use error::Error;
pub use future::ResponseFuture;
pub use layer::MeshxAuthLayer;
pub use login::{MAX_LOGIN_ANSWER_BYTES, MAX_TOKEN_LIFETIME};
pub use organization::Organization;
pub use replay::{BufferBodies, Buffered, CloneBodies, CloneBodyFn, EmptyBodiesOnly, ReplayBody};
pub use service::{MeshxAuthService, RequestOrg, X_ORG};
pub use source::{Token, TokenFuture, TokenSource};
pub use status::AuthStatus;

/// The README's examples, compiled as doc tests so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
