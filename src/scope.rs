//! Which requests receive the credentials.

use http::Uri;

/// The authorities (`host` or `host:port`) that may receive the credentials. Requests whose URI
/// has no authority (path-only URIs, as tonic channels and axum routers see them) always may.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    allowed: Box<[String]>,
}

impl Scope {
    pub(crate) fn new<I, S>(authorities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Scope {
            allowed: authorities
                .into_iter()
                .map(|a| a.as_ref().trim().to_ascii_lowercase())
                .filter(|a| !a.is_empty())
                .collect(),
        }
    }

    #[inline]
    pub(crate) fn allows(&self, uri: &Uri) -> bool {
        let Some(authority) = uri.authority() else {
            return true;
        };
        let host = authority.host();
        self.allowed.iter().any(|entry| {
            entry.eq_ignore_ascii_case(authority.as_str())
                || (entry.eq_ignore_ascii_case(host) && !entry.contains(':'))
                || entry
                    .strip_prefix('[')
                    .and_then(|e| e.strip_suffix(']'))
                    .is_some_and(|e| host.trim_matches(['[', ']']).eq_ignore_ascii_case(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_host_or_host_and_port() {
        let scope = Scope::new(["api.meshx.foundation", "127.0.0.1:8080"]);
        let allows = |u: &str| scope.allows(&u.parse().unwrap());
        assert!(allows("https://api.meshx.foundation/api/x"));
        assert!(allows("https://API.meshx.foundation:443/api/x"));
        assert!(allows("http://127.0.0.1:8080/api"));
        assert!(!allows("http://127.0.0.1:9090/api"));
        assert!(!allows("https://evil.example/api"));
        assert!(!allows("https://api.meshx.foundation.evil.example/api"));
        assert!(allows("/relative/path"));
    }
}
