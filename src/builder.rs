//! [`MeshxAuthBuilder`]: configuration with named defaults.

use crate::auth::MeshxAuth;
use crate::backoff::{Backoff, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP, DEFAULT_DEMAND_INTERVAL};
use crate::credential::TokenCell;
use crate::error::Error;
use crate::login::{self, LoginClient};
use crate::scope::Scope;
use crate::shared::{self, Shared, Signals, StatusData, Timing};
use crate::source::{Source, TokenSource};
use crate::{jwt, refresher};
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::time::Instant;

/// The MeshX Foundation API.
pub const DEFAULT_API_URL: &str = "https://api.meshx.foundation/api";
/// How long one login may take, connect to last byte.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long before expiry the token is refreshed (capped at a quarter of its lifetime).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Random extra lead on the refresh point, so a fleet does not refresh in step (capped at a
/// twentieth of the lifetime).
pub const DEFAULT_REFRESH_JITTER: Duration = Duration::from_secs(30);

enum Mode {
    Password {
        user: String,
        password: SecretString,
    },
    Static(SecretString),
    Custom(Arc<dyn TokenSource>),
}

/// Configures and builds a [`MeshxAuth`].
///
/// ```no_run
/// # async fn demo() -> Result<(), meshx_auth::Error> {
/// let auth = meshx_auth::MeshxAuth::builder()
///     .credentials("alice", "correct horse battery staple")
///     .org("acme")
///     .build()
///     .await?; // logs in once; fails fast on wrong credentials
/// # Ok(()) }
/// ```
pub struct MeshxAuthBuilder {
    api_url: String,
    modes: Vec<Mode>,
    org: Option<String>,
    login_timeout: Duration,
    refresh_margin: Duration,
    refresh_jitter: Duration,
    backoff: Backoff,
    retry_on_unauthorized: bool,
    allow_insecure_http: bool,
    http_client: Option<reqwest::Client>,
    scope: Option<Scoping>,
}

enum Scoping {
    ApiHost,
    Authorities(Vec<String>),
}

impl fmt::Debug for MeshxAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let modes: Vec<&str> = self
            .modes
            .iter()
            .map(|m| match m {
                Mode::Password { .. } => "credentials([REDACTED])",
                Mode::Static(_) => "static_token([REDACTED])",
                Mode::Custom(_) => "token_source(..)",
            })
            .collect();
        f.debug_struct("MeshxAuthBuilder")
            .field("api_url", &self.api_url)
            .field("source", &modes)
            .field("org", &self.org)
            .field("login_timeout", &self.login_timeout)
            .field("refresh_margin", &self.refresh_margin)
            .field("retry_on_unauthorized", &self.retry_on_unauthorized)
            .finish_non_exhaustive()
    }
}

impl Default for MeshxAuthBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MeshxAuthBuilder {
    /// A builder with the defaults: [`DEFAULT_API_URL`], [`DEFAULT_LOGIN_TIMEOUT`],
    /// [`DEFAULT_REFRESH_MARGIN`], 401 retry on.
    pub fn new() -> Self {
        MeshxAuthBuilder {
            api_url: DEFAULT_API_URL.to_owned(),
            modes: Vec::new(),
            org: None,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            refresh_jitter: DEFAULT_REFRESH_JITTER,
            backoff: Backoff {
                base: DEFAULT_BACKOFF_BASE,
                cap: DEFAULT_BACKOFF_CAP,
            },
            retry_on_unauthorized: true,
            allow_insecure_http: false,
            http_client: None,
            scope: None,
        }
    }

    /// A builder configured from the environment:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `MESHX_API_URL` | API base, default [`DEFAULT_API_URL`] |
    /// | `MESHX_USER`, `MESHX_PASSWORD` | password login |
    /// | `MESHX_TOKEN` | a static token from the UI (instead of user and password) |
    /// | `MESHX_ORG` | organization name (required) |
    ///
    /// A missing or contradictory setting is an [`Error::Config`] that names the variable.
    /// Other settings can still be changed on the returned builder.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut builder = MeshxAuthBuilder::new();
        if let Some(url) = get("MESHX_API_URL") {
            // The https rule is checked by build(), which knows about allow_insecure_http.
            check_url(url.trim(), true).map_err(|e| match e {
                Error::Config(why) => Error::Config(format!("MESHX_API_URL: {why}")),
                other => other,
            })?;
            builder = builder.api_url(url);
        }
        let org = get("MESHX_ORG").ok_or_else(|| {
            Error::Config("MESHX_ORG is not set: give the organization name".into())
        })?;
        builder = builder.org(org);
        match (get("MESHX_TOKEN"), get("MESHX_USER"), get("MESHX_PASSWORD")) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(Error::Config(
                "both MESHX_TOKEN and MESHX_USER/MESHX_PASSWORD are set: use one way to authenticate".into(),
            )),
            (Some(token), None, None) => Ok(builder.static_token(token)),
            (None, Some(user), Some(password)) => Ok(builder.credentials(user, password)),
            (None, Some(_), None) => Err(Error::Config(
                "MESHX_USER is set but MESHX_PASSWORD is not".into(),
            )),
            (None, None, Some(_)) => Err(Error::Config(
                "MESHX_PASSWORD is set but MESHX_USER is not".into(),
            )),
            (None, None, None) => Err(Error::Config(
                "no credentials in the environment: set MESHX_USER and MESHX_PASSWORD, or MESHX_TOKEN".into(),
            )),
        }
    }

    /// The API base, including `/api` (default [`DEFAULT_API_URL`]). Must be `https://`, except
    /// for loopback hosts or with [`allow_insecure_http`](Self::allow_insecure_http).
    pub fn api_url(mut self, url: impl AsRef<str>) -> Self {
        self.api_url = url.as_ref().trim().to_owned();
        self
    }

    /// Log in with a user and a password (`POST {api}/iam/login`), and again before each token
    /// expires.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.modes.push(Mode::Password {
            user: user.into(),
            password: SecretString::from(password.into()),
        });
        self
    }

    /// Use a token copied from the MeshX UI (User Profile, Authentication Token). No login ever
    /// happens; when the token is a JWT, its `exp` claim is read to warn before it expires.
    /// Surrounding white space and a leading `Bearer ` are removed.
    pub fn static_token(mut self, token: impl Into<String>) -> Self {
        self.modes
            .push(Mode::Static(SecretString::from(token.into())));
        self
    }

    /// Use a token source of your own.
    pub fn token_source(mut self, source: impl TokenSource) -> Self {
        self.modes.push(Mode::Custom(Arc::new(source)));
        self
    }

    /// The organization *name* sent in `x-org` (not its UUID identifier).
    pub fn org(mut self, name: impl Into<String>) -> Self {
        self.org = Some(name.into());
        self
    }

    /// How long one login may take, from connecting to the last byte of the answer (default
    /// [`DEFAULT_LOGIN_TIMEOUT`]). Also bounds how long a request waits for a token.
    pub fn login_timeout(mut self, timeout: Duration) -> Self {
        self.login_timeout = timeout;
        self
    }

    /// How long before expiry to refresh (default [`DEFAULT_REFRESH_MARGIN`]); capped at a
    /// quarter of the token's lifetime.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The largest random extra lead on the refresh point (default
    /// [`DEFAULT_REFRESH_JITTER`]); capped at a twentieth of the lifetime.
    pub fn refresh_jitter(mut self, jitter: Duration) -> Self {
        self.refresh_jitter = jitter;
        self
    }

    /// Backoff after failed refreshes: full jitter below `min(cap, base * 2^(n-1))`
    /// (defaults [`DEFAULT_BACKOFF_BASE`](crate::DEFAULT_BACKOFF_BASE),
    /// [`DEFAULT_BACKOFF_CAP`](crate::DEFAULT_BACKOFF_CAP)).
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff = Backoff { base, cap };
        self
    }

    /// Whether a 401 (or gRPC UNAUTHENTICATED) triggers a refresh and one replay (default on).
    /// Off, the middleware does nothing but add headers: a revoked token is then only replaced
    /// at its scheduled refresh.
    pub fn retry_on_unauthorized(mut self, retry: bool) -> Self {
        self.retry_on_unauthorized = retry;
        self
    }

    /// Allow an `http://` API URL on a host that is not loopback. Credentials then cross the
    /// network in clear text: only for networks you trust.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// The `reqwest::Client` to log in with (proxies, custom roots). By default one is made with
    /// the login timeout.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Sends the credentials only to requests for these authorities (`host` or `host:port`), so
    /// that a client shared with other hosts never leaks the MeshX token. Requests with a
    /// path-only URI (as tonic channels and axum routers see them) always receive them.
    ///
    /// By default every request through the layer receives the credentials: the layer is meant
    /// to wrap a client of the MeshX API.
    pub fn restrict_to_authorities<I, S>(mut self, authorities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope = Some(Scoping::Authorities(
            authorities.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Sends the credentials only to requests for the API URL's host (see
    /// [`restrict_to_authorities`](Self::restrict_to_authorities)).
    pub fn restrict_to_api_host(mut self) -> Self {
        self.scope = Some(Scoping::ApiHost);
        self
    }

    /// Checks the configuration, logs in once (a single attempt: wrong credentials fail here,
    /// at once) and starts the refresher on the current tokio runtime.
    pub async fn build(self) -> Result<MeshxAuth, Error> {
        let api_url = check_url(&self.api_url, self.allow_insecure_http)?;
        let org_name = check_org(self.org.as_deref())?;
        if HeaderValue::from_str(&org_name).is_err() {
            return Err(Error::Config(
                "the organization name is not a valid header value".into(),
            ));
        }
        // Interned: clones of a static value touch no shared counter (see local.rs).
        let org = HeaderValue::from_static(crate::local::intern(&org_name));
        if self.login_timeout.is_zero() {
            return Err(Error::Config("the login timeout must be positive".into()));
        }
        if self.backoff.base.is_zero() || self.backoff.cap < self.backoff.base {
            return Err(Error::Config(
                "the backoff base must be positive and no larger than the cap".into(),
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Config(
                "build() must run inside a tokio runtime (the refresher is a tokio task)".into(),
            ));
        }
        let scope = match self.scope {
            None => None,
            Some(Scoping::ApiHost) => {
                let host = api_url.host_str().unwrap_or_default();
                let with_port = api_url
                    .port()
                    .map(|port| format!("{host}:{port}"))
                    .unwrap_or_else(|| host.to_owned());
                Some(Scope::new([with_port]))
            }
            Some(Scoping::Authorities(list)) if list.iter().all(|a| a.trim().is_empty()) => {
                return Err(Error::Config(
                    "restrict_to_authorities was given no authority".into(),
                ));
            }
            Some(Scoping::Authorities(list)) => Some(Scope::new(list)),
        };
        let mut modes = self.modes;
        let mode = match (modes.pop(), modes.is_empty()) {
            (Some(mode), true) => mode,
            (None, _) => {
                return Err(Error::Config(
                    "no credentials: call credentials(user, password), static_token(token) or token_source(..)".into(),
                ));
            }
            (Some(_), false) => {
                return Err(Error::Config(
                    "more than one way to get a token was given: use exactly one of credentials, static_token and token_source".into(),
                ));
            }
        };
        let http = match self.http_client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(self.login_timeout)
                .build()
                .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?,
        };
        let timing = Timing {
            login_timeout: self.login_timeout,
            refresh_margin: self.refresh_margin,
            refresh_jitter: self.refresh_jitter,
            backoff: self.backoff,
            demand_interval: DEFAULT_DEMAND_INTERVAL,
        };
        let source = match mode {
            Mode::Password { user, password } => {
                if user.trim().is_empty() {
                    return Err(Error::Config("the user name is empty".into()));
                }
                if password.expose_secret().is_empty() {
                    return Err(Error::Config("the password is empty".into()));
                }
                Source::Password(LoginClient::new(
                    http.clone(),
                    &api_url,
                    user,
                    password,
                    self.login_timeout,
                ))
            }
            Mode::Static(token) => static_source(token)?,
            Mode::Custom(source) => Source::Custom(source),
        };

        let sent_at = Instant::now();
        let first = match tokio::time::timeout(self.login_timeout, source.fetch()).await {
            Ok(fetched) => fetched?,
            Err(_) => return Err(Error::LoginTimeout(self.login_timeout)),
        };
        let credential = shared::make_credential(&first, sent_at, 1, &timing, source.can_refresh())
            .map_err(|e| match (&source, e) {
                (Source::Static { .. }, _) => Error::Config(
                    "the static token holds bytes that are not allowed in an HTTP header".into(),
                ),
                (_, e) => e,
            })?;
        let status = StatusData {
            valid_until: credential.expires_at.map(shared::system_time),
            logins: u64::from(source.can_refresh()),
            ..StatusData::default()
        };
        let refresh_at = credential.refresh_at;
        let shared = Arc::new(Shared {
            id: shared::next_id(),
            cell: TokenCell::new(credential),
            state: AtomicU64::new(shared::state_word(1, false)),
            org,
            org_name,
            api_url,
            http,
            source,
            timing,
            signals: Arc::new(Signals::default()),
            progress: watch::Sender::new(Default::default()),
            status: Mutex::new(status),
            retries: AtomicU64::new(0),
            retry_on_unauthorized: self.retry_on_unauthorized,
            scope,
        });
        shared::log_new_token(1, shared.source.kind(), &first, refresh_at);
        drop(first);
        refresher::spawn(&shared);
        if looks_like_uuid(&shared.org_name) {
            warn_uuid_org(&shared).await;
        }
        Ok(MeshxAuth { shared })
    }
}

/// `x-org` takes a name; a UUID is almost surely an organization's identifier. Say whose, when
/// the organization list can be read.
async fn warn_uuid_org(shared: &Shared) {
    let id = &shared.org_name;
    let owner = match shared.organizations().await {
        Ok(list) => list
            .into_iter()
            .find(|o| o.identifier.eq_ignore_ascii_case(id))
            .map(|o| o.name),
        Err(_) => None,
    };
    match owner {
        Some(name) => tracing::warn!(
            target: "meshx_auth",
            org = %id,
            name = %name,
            "the organization {id} is the identifier of organization {name:?}: x-org takes the name; use .org({name:?}) (MESHX_ORG={name})"
        ),
        None => tracing::warn!(
            target: "meshx_auth",
            org = %id,
            "the organization looks like a UUID identifier; x-org takes the organization *name* (see MeshxAuth::organizations)"
        ),
    }
}

fn static_source(token: SecretString) -> Result<Source, Error> {
    let raw = token.expose_secret().trim();
    let raw = match raw.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => raw[7..].trim_start(),
        _ => raw,
    };
    if raw.is_empty() {
        return Err(Error::Config("the static token is empty".into()));
    }
    if login::validate_token(raw).is_err() {
        return Err(Error::Config(
            "the static token holds bytes that are not allowed in an HTTP header".into(),
        ));
    }
    let expires_at = jwt::expiry(raw);
    if let Some(at) = expires_at.filter(|at| *at <= SystemTime::now()) {
        return Err(Error::StaticTokenExpired { expired_at: at });
    }
    Ok(Source::Static {
        token: SecretString::from(raw),
        expires_at,
    })
}

fn check_org(org: Option<&str>) -> Result<String, Error> {
    let org = org.map(str::trim).ok_or_else(|| {
        Error::Config("no organization: call org(name) (the x-org header)".into())
    })?;
    if org.is_empty() {
        return Err(Error::Config("the organization name is empty".into()));
    }
    Ok(org.to_owned())
}

pub(crate) fn check_url(raw: &str, allow_insecure_http: bool) -> Result<reqwest::Url, Error> {
    let url = reqwest::Url::parse(raw)
        .map_err(|e| Error::Config(format!("the API URL is not a valid URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config(
            "the API URL must not carry a user or password; use credentials(..)".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(
            "the API URL must not have a query or fragment".into(),
        ));
    }
    let host = url
        .host()
        .ok_or_else(|| Error::Config("the API URL has no host".into()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http || is_loopback(&host) => {}
        "http" => {
            return Err(Error::Config(format!(
                "the API URL uses http:// on a non-loopback host ({host}): credentials would cross the network in clear text; use https:// or allow_insecure_http(true)"
            )));
        }
        other => {
            return Err(Error::Config(format!(
                "the API URL scheme must be https, not {other}"
            )));
        }
    }
    Ok(url)
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// `8-4-4-4-12` hex digits.
pub(crate) fn looks_like_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("https://api.meshx.foundation/api", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/api", false).is_ok());
        assert!(check_url("http://localhost:8080/api", false).is_ok());
        assert!(check_url("http://[::1]:8080/api", false).is_ok());
        assert!(check_url("http://example.com/api", false).is_err());
        assert!(check_url("http://example.com/api", true).is_ok());
        assert!(check_url("https://u:p@example.com/api", false).is_err());
        assert!(check_url("ftp://example.com/api", false).is_err());
        assert!(check_url("not a url", false).is_err());
    }

    #[test]
    fn from_env_names_the_variable() {
        use std::collections::HashMap;
        let env = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            MeshxAuthBuilder::from_lookup(move |name| map.get(name).cloned())
        };
        let err = |pairs: &[(&str, &str)]| env(pairs).unwrap_err().to_string();
        assert!(err(&[("MESHX_USER", "u"), ("MESHX_PASSWORD", "p")]).contains("MESHX_ORG"));
        assert!(err(&[("MESHX_ORG", "o")]).contains("MESHX_TOKEN"));
        assert!(err(&[("MESHX_ORG", "o"), ("MESHX_USER", "u")]).contains("MESHX_PASSWORD"));
        assert!(err(&[("MESHX_ORG", "o"), ("MESHX_PASSWORD", "p")]).contains("MESHX_USER"));
        let both = err(&[
            ("MESHX_ORG", "o"),
            ("MESHX_TOKEN", "t"),
            ("MESHX_USER", "u"),
        ]);
        assert!(both.contains("MESHX_TOKEN") && both.contains("MESHX_USER"));
        let ok = env(&[
            ("MESHX_ORG", "o"),
            ("MESHX_TOKEN", "tok"),
            ("MESHX_API_URL", "https://x/api"),
        ])
        .unwrap();
        assert_eq!(ok.api_url, "https://x/api");
        assert_eq!(ok.org.as_deref(), Some("o"));
        assert!(matches!(ok.modes[..], [Mode::Static(_)]));
        let ok = env(&[
            ("MESHX_ORG", "o"),
            ("MESHX_USER", "u"),
            ("MESHX_PASSWORD", "p"),
        ])
        .unwrap();
        assert!(matches!(ok.modes[..], [Mode::Password { .. }]));
        // The password never shows.
        assert!(!format!("{ok:?}").contains("\"p\""));
    }

    #[test]
    fn uuid_detection() {
        assert!(looks_like_uuid("3f2b8c1e-9a4d-4e5f-8b6a-1c2d3e4f5a6b"));
        assert!(!looks_like_uuid("acme"));
        assert!(!looks_like_uuid("3f2b8c1e-9a4d-4e5f-8b6a-1c2d3e4f5a6"));
    }
}
