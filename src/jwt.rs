//! Reads the `exp` claim of a JWT, without verifying anything.
//!
//! A token copied from the MeshX UI is a JWT; its `exp` claim tells when it stops working. The
//! signature is not checked: the API checks it, we only want to warn in time. Hand-written on
//! purpose: a JWT payload is base64url + JSON, and a full JWT crate would add a crypto stack
//! for nothing.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use std::time::{Duration, SystemTime};

/// Largest payload we decode; real payloads are a few hundred bytes.
const MAX_PAYLOAD: usize = 16 * 1024;

/// The `exp` claim of `token`, when it is a JWT that has one; `None` for anything else.
pub(crate) fn expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.is_empty() || payload.len() > MAX_PAYLOAD {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    let secs = if let Some(s) = exp.as_u64() {
        Duration::from_secs(s)
    } else {
        let f = exp.as_f64()?;
        Duration::try_from_secs_f64(f).ok()?
    };
    SystemTime::UNIX_EPOCH.checked_add(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_integer_and_float_exp() {
        let t = expiry(&jwt(r#"{"exp":1700000000}"#)).unwrap();
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        let t = expiry(&jwt(r#"{"exp":1700000000.5}"#)).unwrap();
        assert_eq!(
            t,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500)
        );
    }

    #[test]
    fn rejects_junk_without_panicking() {
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "a..c",
            "a.!!!.c",
            &jwt(r#"{"exp":-5}"#),
            &jwt(r#"{"exp":"soon"}"#),
            &jwt(r#"{"exp":1e300}"#),
            &jwt(r#"{"exp":18446744073709551615}"#),
            &jwt(r#"{"nbf":1}"#),
            &jwt("not json"),
        ] {
            let _ = expiry(token); // must not panic
        }
        assert_eq!(expiry(&jwt(r#"{"exp":-5}"#)), None);
        assert_eq!(expiry(&jwt(r#"{"exp":"soon"}"#)), None);
        assert_eq!(expiry(&jwt(r#"{"exp":1e300}"#)), None);
        assert_eq!(expiry("not-a-jwt"), None);
    }
}
