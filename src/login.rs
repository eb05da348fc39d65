//! The password login: `POST {api}/iam/login` and the validation of its answer.

use crate::error::Error;
use crate::jwt;
use crate::source::Token;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::time::{Duration, SystemTime};

/// Largest login answer we read. The documented answer is a few kilobytes at most.
pub const MAX_LOGIN_ANSWER_BYTES: usize = 64 * 1024;

/// Longest token lifetime we believe. Longer `expires_in` values are clamped to this (with a
/// warning), so that an absurd answer can never overflow a deadline.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// Logs in with a user and a password.
pub(crate) struct LoginClient {
    http: reqwest::Client,
    url: reqwest::Url,
    user: String,
    password: SecretString,
    timeout: Duration,
}

impl fmt::Debug for LoginClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginClient")
            .field("url", &self.url.as_str())
            .field("user", &self.user)
            .field("password", &"[REDACTED]")
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(serde::Serialize)]
struct LoginBody<'a> {
    user: &'a str,
    password: &'a str,
}

impl LoginClient {
    pub(crate) fn new(
        http: reqwest::Client,
        api: &reqwest::Url,
        user: String,
        password: SecretString,
        timeout: Duration,
    ) -> Self {
        LoginClient {
            http,
            url: join(api, "iam/login"),
            user,
            password,
            timeout,
        }
    }

    /// One login attempt, bounded by the login timeout as a whole (connect, answer and body).
    pub(crate) async fn login(&self) -> Result<Token, Error> {
        match tokio::time::timeout(self.timeout, self.login_inner()).await {
            Ok(result) => result,
            Err(_) => Err(Error::LoginTimeout(self.timeout)),
        }
    }

    fn error(&self, error: reqwest::Error) -> Error {
        if error.is_timeout() {
            Error::LoginTimeout(self.timeout)
        } else {
            Error::transport(error)
        }
    }

    async fn login_inner(&self) -> Result<Token, Error> {
        let body = LoginBody {
            user: &self.user,
            password: self.password.expose_secret(),
        };
        let mut response = self
            .http
            .post(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| self.error(e))?;
        let status = response.status();
        if !status.is_success() {
            let url = self.url.to_string();
            return Err(match status.as_u16() {
                400 | 401 | 403 => Error::CredentialsRejected {
                    status: status.as_u16(),
                    url,
                },
                code => Error::LoginStatus {
                    status: code,
                    url,
                    retry_after: retry_after(response.headers()),
                },
            });
        }
        let bytes = match read_capped(&mut response, MAX_LOGIN_ANSWER_BYTES).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(Error::InvalidAnswer(format!(
                    "the answer is larger than {MAX_LOGIN_ANSWER_BYTES} bytes"
                )));
            }
            Err(e) => return Err(self.error(e)),
        };
        parse_login_answer(&bytes)
    }
}

/// The body of `response`, or `None` as soon as it is known to be longer than `cap` bytes (from
/// `content-length`, or while reading): an answer is never read without bound.
pub(crate) async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if bytes.len() + chunk.len() > cap {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// `api` joined with `path`, keeping the base path (`.../api` + `iam/login` = `.../api/iam/login`).
pub(crate) fn join(api: &reqwest::Url, path: &str) -> reqwest::Url {
    let mut url = api.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/{path}"));
    url
}

/// `Retry-After` as delta-seconds (the HTTP-date form is ignored).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The documented login answer. `expires_in` is read leniently (number or numeric string) and
/// validated by hand; unknown fields are ignored. Deliberately not `Debug`: it holds tokens.
#[derive(Deserialize)]
struct RawAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    token_type: Option<String>,
}

/// Validates a login answer (DESIGN.md invariant 8). Errors name the problem, never the value.
pub(crate) fn parse_login_answer(bytes: &[u8]) -> Result<Token, Error> {
    let raw: RawAnswer = match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value @ serde_json::Value::Object(_)) => serde_json::from_value(value).map_err(|e| {
            Error::InvalidAnswer(format!(
                "a field has the wrong type (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?,
        Ok(_) => {
            return Err(Error::InvalidAnswer(
                "the answer is not a JSON object".into(),
            ));
        }
        Err(_) => {
            let looks_html = bytes
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'<');
            return Err(Error::InvalidAnswer(if looks_html {
                "the answer is an HTML page, not JSON: is the API URL right (it ends in /api)?"
                    .into()
            } else {
                "the answer is not valid JSON".into()
            }));
        }
    };
    let access_token = raw
        .access_token
        .ok_or_else(|| Error::InvalidAnswer("`access_token` is missing".into()))?;
    validate_token(&access_token)?;
    if raw
        .token_type
        .as_ref()
        .is_some_and(|kind| !kind.eq_ignore_ascii_case("bearer"))
    {
        return Err(Error::InvalidAnswer("`token_type` is not Bearer".into()));
    }
    let lifetime = match raw.expires_in {
        Some(value) => parse_lifetime(&value)?,
        None => match jwt::expiry(&access_token) {
            // Without `expires_in`, the token's own `exp` claim is the next best thing.
            Some(exp) => {
                let left = exp
                    .duration_since(SystemTime::now())
                    .ok()
                    .filter(|left| !left.is_zero())
                    .ok_or_else(|| Error::InvalidAnswer("the token has already expired".into()))?;
                clamp(left)
            }
            None => return Err(Error::InvalidAnswer("`expires_in` is missing".into())),
        },
    };
    let refresh_token = raw
        .refresh_token
        .filter(|t| !t.is_empty())
        .map(SecretString::from);
    Ok(Token {
        access_token: SecretString::from(access_token),
        lifetime: Some(lifetime),
        refresh_token,
    })
}

/// A token must be non-empty visible ASCII (RFC 6750 `b64token` is a subset) so that
/// `Bearer <token>` is a valid header value; CR, LF, NUL, DEL, spaces and non-ASCII are refused.
pub(crate) fn validate_token(token: &str) -> Result<(), Error> {
    if token.is_empty() {
        return Err(Error::InvalidAnswer("`access_token` is empty".into()));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::InvalidAnswer(
            "`access_token` holds bytes that are not allowed in an HTTP header".into(),
        ));
    }
    Ok(())
}

/// `Bearer <token>`, marked sensitive. The token must have passed [`validate_token`].
pub(crate) fn bearer_header(token: &str) -> Result<HeaderValue, Error> {
    let mut value = String::with_capacity(7 + token.len());
    value.push_str("Bearer ");
    value.push_str(token);
    let mut header = HeaderValue::try_from(value).map_err(|_| {
        Error::InvalidAnswer(
            "`access_token` holds bytes that are not allowed in an HTTP header".into(),
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

fn parse_lifetime(value: &serde_json::Value) -> Result<Duration, Error> {
    let bad = |what: &str| Error::InvalidAnswer(format!("`expires_in` {what}"));
    let secs: f64 = match value {
        serde_json::Value::Number(n) => n.as_f64().ok_or_else(|| bad("is not a number"))?,
        serde_json::Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| bad("is not a number"))?,
        _ => return Err(bad("is not a number")),
    };
    if !secs.is_finite() {
        return Err(bad("is not a finite number"));
    }
    if secs <= 0.0 {
        return Err(bad("is not positive"));
    }
    let lifetime = Duration::try_from_secs_f64(secs).unwrap_or(MAX_TOKEN_LIFETIME);
    if lifetime.is_zero() {
        // Positive, but below a nanosecond: no usable lifetime.
        return Err(bad("is not positive"));
    }
    Ok(clamp(lifetime))
}

fn clamp(lifetime: Duration) -> Duration {
    if lifetime > MAX_TOKEN_LIFETIME {
        tracing::warn!(
            target: "meshx_auth",
            lifetime_secs = lifetime.as_secs(),
            max_secs = MAX_TOKEN_LIFETIME.as_secs(),
            "token lifetime is implausibly long; clamped"
        );
        MAX_TOKEN_LIFETIME
    } else {
        lifetime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match parse_login_answer(body.as_bytes()) {
            Ok(_) => panic!("accepted {body}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn accepts_the_documented_answer() {
        let token = parse_login_answer(
            br#"{"access_token":"abc.def.ghi","refresh_token":"r","expires_in":18000,
                "refresh_expires_in":86400,"scope":"openid","token_type":"Bearer","session_state":"s"}"#,
        )
        .unwrap();
        assert_eq!(token.access_token.expose_secret(), "abc.def.ghi");
        assert_eq!(token.lifetime, Some(Duration::from_secs(18000)));
        assert!(token.refresh_token.is_some());
    }

    #[test]
    fn accepts_numeric_strings_and_any_case_bearer() {
        let token =
            parse_login_answer(br#"{"access_token":"t","expires_in":"300","token_type":"bearer"}"#)
                .unwrap();
        assert_eq!(token.lifetime, Some(Duration::from_secs(300)));
    }

    #[test]
    fn rejects_bad_answers_with_clear_errors() {
        assert!(err("not json").contains("not valid JSON"));
        assert!(err("<html><body>login</body></html>").contains("HTML"));
        assert!(err("[1,2]").contains("not a JSON object"));
        assert!(err(r#"{"expires_in":5}"#).contains("missing"));
        assert!(err(r#"{"access_token":"","expires_in":5}"#).contains("empty"));
        assert!(err(r#"{"access_token":"a\r\nb","expires_in":5}"#).contains("not allowed"));
        assert!(err(r#"{"access_token":"a\u0000b","expires_in":5}"#).contains("not allowed"));
        assert!(err(r#"{"access_token":"a\u007fb","expires_in":5}"#).contains("not allowed"));
        assert!(
            err(r#"{"access_token":"t","expires_in":5,"token_type":"MAC"}"#).contains("Bearer")
        );
        assert!(err(r#"{"access_token":"t","expires_in":0}"#).contains("positive"));
        assert!(err(r#"{"access_token":"t","expires_in":-3}"#).contains("positive"));
        assert!(err(r#"{"access_token":"t","expires_in":"soon"}"#).contains("not a number"));
        assert!(err(r#"{"access_token":"t","expires_in":true}"#).contains("not a number"));
        assert!(err(r#"{"access_token":"t"}"#).contains("missing"));
        assert!(err(r#"{"access_token":5,"expires_in":5}"#).contains("wrong type"));
    }

    #[test]
    fn absurd_lifetimes_are_clamped() {
        for body in [
            r#"{"access_token":"t","expires_in":1e300}"#,
            r#"{"access_token":"t","expires_in":18446744073709551615}"#,
            r#"{"access_token":"t","expires_in":"99999999999999999999999"}"#,
        ] {
            let token = parse_login_answer(body.as_bytes()).unwrap();
            assert_eq!(token.lifetime, Some(MAX_TOKEN_LIFETIME), "{body}");
        }
    }

    #[test]
    fn errors_never_echo_the_token() {
        let e = err(r#"{"access_token":"s3cr3t\n","expires_in":5}"#);
        assert!(!e.contains("s3cr3t"));
    }

    #[test]
    fn join_keeps_the_base_path() {
        let api = reqwest::Url::parse("https://x.example/api/").unwrap();
        assert_eq!(
            join(&api, "iam/login").as_str(),
            "https://x.example/api/iam/login"
        );
        let api = reqwest::Url::parse("https://x.example/api").unwrap();
        assert_eq!(
            join(&api, "iam/login").as_str(),
            "https://x.example/api/iam/login"
        );
    }
}
