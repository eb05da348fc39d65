//! Where tokens come from: a password login, a static token from the UI, or a source of your own.

use crate::error::Error;
use crate::login::LoginClient;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// An access token and how long it lives, as a [`TokenSource`] hands it over.
pub struct Token {
    pub(crate) access_token: SecretString,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) refresh_token: Option<SecretString>,
}

impl Token {
    /// A token that lives `lifetime`, counted from when the request for it was sent.
    /// `None` means the token does not expire (it is never refreshed proactively).
    pub fn new(access_token: impl Into<String>, lifetime: Option<Duration>) -> Self {
        Token {
            access_token: SecretString::from(access_token.into()),
            lifetime,
            refresh_token: None,
        }
    }

    /// The access token. Handle with care: it is a secret.
    pub fn access_token(&self) -> &SecretString {
        &self.access_token
    }

    /// How long the token lives from when it was requested, if known.
    pub fn lifetime(&self) -> Option<Duration> {
        self.lifetime
    }

    /// The refresh token of a password login (kept for a source of your own; never logged).
    pub fn refresh_token(&self) -> Option<&SecretString> {
        self.refresh_token.as_ref()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"[REDACTED]")
            .field("lifetime", &self.lifetime)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// The future a [`TokenSource`] returns.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Token, Error>> + Send + 'a>>;

/// A source of tokens of your own: a vault, a sidecar, a different login flow.
///
/// The refresher calls [`fetch`](TokenSource::fetch) whenever it needs a new token, never more than
/// once at a time, each call bounded by the login timeout.
pub trait TokenSource: Send + Sync + 'static {
    /// Fetches a fresh token.
    fn fetch(&self) -> TokenFuture<'_>;
}

impl<F, Fut> TokenSource for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Token, Error>> + Send + 'static,
{
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self())
    }
}

/// The source a `MeshxAuth` was built with.
pub(crate) enum Source {
    /// `POST {api}/iam/login` with the stored user and password.
    Password(LoginClient),
    /// A token copied from the UI; never refreshed. `expires_at` is its JWT `exp`, if any.
    Static {
        token: SecretString,
        expires_at: Option<SystemTime>,
    },
    /// A user's own source.
    Custom(Arc<dyn TokenSource>),
}

impl Source {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Source::Password(_) => "password login",
            Source::Static { .. } => "static token",
            Source::Custom(_) => "custom token source",
        }
    }

    pub(crate) fn can_refresh(&self) -> bool {
        !matches!(self, Source::Static { .. })
    }

    /// Fetches a token. For a static source this hands back the static token.
    pub(crate) async fn fetch(&self) -> Result<Token, Error> {
        match self {
            Source::Password(client) => client.login().await,
            Source::Static { token, expires_at } => Ok(Token {
                access_token: SecretString::from(token.expose_secret()),
                lifetime: expires_at.map(|at| {
                    at.duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO)
                }),
                refresh_token: None,
            }),
            Source::Custom(source) => source.fetch().await,
        }
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Password(client) => f.debug_tuple("Password").field(client).finish(),
            Source::Static { expires_at, .. } => f
                .debug_struct("Static")
                .field("token", &"[REDACTED]")
                .field("expires_at", expires_at)
                .finish(),
            Source::Custom(_) => f.write_str("Custom"),
        }
    }
}
