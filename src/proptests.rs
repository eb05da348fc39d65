//! Property tests of the parsers that read untrusted input: the login answer
//! ([`parse_login_answer`]) and the JWT `exp` reader ([`jwt::expiry`]).
//!
//! Whatever the bytes, the JSON shape, the size of the numbers or the script of the strings:
//! never a panic, always `Ok` or an `Err` that says what is wrong without echoing the token, and
//! every token that comes out makes a valid, sensitive `Authorization` header value.

use crate::error::Error;
use crate::jwt;
use crate::login::{self, MAX_TOKEN_LIFETIME, parse_login_answer};
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

/// What every `Ok` must satisfy: a token that is a valid header value, a lifetime that is
/// positive and clamped.
fn check_ok(token: &crate::source::Token) -> Result<(), TestCaseError> {
    let secret = token.access_token.expose_secret();
    prop_assert!(!secret.is_empty());
    prop_assert!(secret.bytes().all(|b| b.is_ascii_graphic()));
    let header = http::HeaderValue::from_str(&format!("Bearer {secret}"));
    prop_assert!(header.is_ok(), "not a header value");
    let header = login::bearer_header(secret);
    prop_assert!(header.as_ref().is_ok_and(|h| h.is_sensitive()));
    let lifetime = token
        .lifetime
        .expect("a login answer always has a lifetime");
    prop_assert!(lifetime <= MAX_TOKEN_LIFETIME);
    prop_assert!(
        !lifetime.is_zero(),
        "a zero lifetime came out: {lifetime:?}"
    );
    Ok(())
}

/// What every `Err` must satisfy: the invalid-answer kind, a message, and no token in it.
fn check_err(error: &Error, token: Option<&str>) -> Result<(), TestCaseError> {
    prop_assert!(matches!(error, Error::InvalidAnswer(_)), "{error:?}");
    let shown = format!("{error} {error:?}");
    prop_assert!(shown.starts_with("invalid MeshX login answer: "));
    if let Some(token) = token.filter(|t| t.len() >= 4) {
        prop_assert!(!shown.contains(token), "the error echoed the token");
    }
    Ok(())
}

fn check(bytes: &[u8], token: Option<&str>) -> Result<(), TestCaseError> {
    match parse_login_answer(bytes) {
        Ok(parsed) => check_ok(&parsed),
        Err(error) => check_err(&error, token),
    }
}

/// Any JSON value, nested, with unicode strings and numbers of every size.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)), // NaN and infinities become null
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("access_token".to_owned()),
                    Just("expires_in".to_owned()),
                    Just("token_type".to_owned()),
                    Just("refresh_token".to_owned()),
                    ".{0,12}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `expires_in` as real IAMs (and broken ones) send it.
fn expires_in() -> impl Strategy<Value = Value> {
    prop_oneof![
        (1u64..1_000_000).prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        (1e-12f64..1e-3).prop_map(|f| json!(f)),
        (0.0f64..1e30).prop_map(|f| json!(f)),
        any::<u64>().prop_map(|n| json!(n.to_string())),
        "[0-9]{1,40}".prop_map(Value::String),
        "[-+ ]?[0-9]{0,5}(\\.[0-9]{0,5})?([eE][-+]?[0-9]{1,4})? ?".prop_map(Value::String),
        ".*".prop_map(Value::String),
        any_json(),
    ]
}

/// Tokens: plausible ones, JWT-shaped ones, and junk with control bytes and unicode.
fn access_token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._~+/=-]{1,200}",
        "[!-~]{1,64}",
        ".{0,64}",
        "[ -~\\t\\r\\n\\x00\\x7f]{0,32}",
        any::<String>(),
    ]
}

fn token_type() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!("Bearer"))),
        Just(Some(json!("bEaReR"))),
        Just(Some(json!("bearer "))),
        Just(Some(json!("MAC"))),
        ".{0,10}".prop_map(|s| Some(json!(s))),
        any_json().prop_map(Some),
    ]
}

fn jwt_with_payload(payload: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(b"signature")
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn login_answer_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes, None)?;
    }

    #[test]
    fn login_answer_arbitrary_json(value in any_json()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        check(&bytes, None)?;
    }

    #[test]
    fn login_answer_documented_shape_with_arbitrary_fields(
        token in access_token(),
        expires in prop::option::of(expires_in()),
        kind in token_type(),
        refresh in prop::option::of(any_json()),
        extra in prop::collection::btree_map(".{0,8}", any_json(), 0..4),
    ) {
        let mut object: serde_json::Map<String, Value> = extra.into_iter().collect();
        object.insert("access_token".into(), json!(token));
        if let Some(expires) = expires {
            object.insert("expires_in".into(), expires);
        }
        if let Some(kind) = kind {
            object.insert("token_type".into(), kind);
        }
        if let Some(refresh) = refresh {
            object.insert("refresh_token".into(), refresh);
        }
        let bytes = serde_json::to_vec(&Value::Object(object)).unwrap();
        check(&bytes, Some(&token))?;
    }

    #[test]
    fn login_answer_well_formed_is_accepted_and_clamped(
        token in "[A-Za-z0-9._~+/=-]{1,200}",
        secs in 1u64..u64::MAX,
        as_string in any::<bool>(),
    ) {
        let expires = if as_string { json!(secs.to_string()) } else { json!(secs) };
        let body = json!({ "access_token": token, "expires_in": expires, "token_type": "Bearer" });
        let parsed = parse_login_answer(&serde_json::to_vec(&body).unwrap());
        prop_assert!(parsed.is_ok(), "{:?}", parsed.err());
        let parsed = parsed.unwrap();
        check_ok(&parsed)?;
        prop_assert_eq!(parsed.access_token.expose_secret(), token.as_str());
        prop_assert_eq!(
            parsed.lifetime,
            Some(Duration::from_secs(secs).min(MAX_TOKEN_LIFETIME))
        );
    }

    #[test]
    fn login_answer_tokens_with_forbidden_bytes_are_refused(
        prefix in "[A-Za-z0-9]{2,10}",
        bad in prop_oneof![
            Just('\r'), Just('\n'), Just('\0'), Just('\u{7f}'), Just(' '), Just('\t'),
            Just('é'), Just('\u{2028}'), Just('😀'),
        ],
        suffix in "[A-Za-z0-9]{2,10}",
    ) {
        let token = format!("{prefix}{bad}{suffix}");
        let body = json!({ "access_token": token, "expires_in": 300 });
        let error = parse_login_answer(&serde_json::to_vec(&body).unwrap());
        prop_assert!(error.is_err());
        check_err(&error.err().unwrap(), Some(&token))?;
    }

    #[test]
    fn login_answer_deeply_nested_junk(depth in 1usize..4096, open in prop_oneof![Just(b'['), Just(b'{')]) {
        // Deeper than serde_json's recursion limit: an error, not a stack overflow.
        let mut bytes = Vec::new();
        for _ in 0..depth {
            bytes.push(open);
            if open == b'{' {
                bytes.extend_from_slice(br#""a":"#);
            }
        }
        check(&bytes, None)?;
        let wrapped = [br#"{"access_token":"t","expires_in":5,"x":"#.as_slice(), &bytes].concat();
        check(&wrapped, None)?;
    }

    #[test]
    fn jwt_expiry_arbitrary_strings(token in any::<String>()) {
        let _ = jwt::expiry(&token);
    }

    #[test]
    fn jwt_expiry_arbitrary_segments(
        a in "[A-Za-z0-9_=+/-]{0,40}",
        b in "[A-Za-z0-9_=+/.-]{0,200}",
        c in "[A-Za-z0-9_=+/-]{0,40}",
    ) {
        let _ = jwt::expiry(&format!("{a}.{b}.{c}"));
    }

    #[test]
    fn jwt_expiry_arbitrary_payloads(payload in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = jwt::expiry(&jwt_with_payload(&payload));
        // Padded base64 too.
        let padded = format!("h.{}.s", URL_SAFE.encode(&payload));
        let _ = jwt::expiry(&padded);
    }

    #[test]
    fn jwt_expiry_arbitrary_claims(claims in any_json(), exp in prop::option::of(expires_in())) {
        let claims = match (claims, exp) {
            (Value::Object(mut map), Some(exp)) => {
                map.insert("exp".into(), exp);
                Value::Object(map)
            }
            (other, _) => other,
        };
        let _ = jwt::expiry(&jwt_with_payload(&serde_json::to_vec(&claims).unwrap()));
    }

    #[test]
    fn jwt_expiry_reads_every_representable_exp(secs in any::<u64>()) {
        let token = jwt_with_payload(json!({ "exp": secs, "sub": "ü😀" }).to_string().as_bytes());
        let expected = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs));
        prop_assert_eq!(jwt::expiry(&token), expected);
    }

    #[test]
    fn login_answer_without_expires_in_uses_the_jwt_exp(ahead in 1u64..(400 * 86_400)) {
        let exp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + ahead
            + 2;
        let token = jwt_with_payload(json!({ "exp": exp }).to_string().as_bytes());
        let body = json!({ "access_token": token, "token_type": "Bearer" });
        let parsed = parse_login_answer(&serde_json::to_vec(&body).unwrap()).unwrap();
        check_ok(&parsed)?;
        let lifetime = parsed.lifetime.unwrap();
        prop_assert!(lifetime <= Duration::from_secs(ahead + 2).min(MAX_TOKEN_LIFETIME));
        prop_assert!(lifetime >= Duration::from_secs(ahead).min(MAX_TOKEN_LIFETIME));
    }
}

/// The cases proptest found interesting, kept as plain tests.
#[test]
fn login_answer_edge_cases() {
    for body in [
        &br#"{"access_token":"t","expires_in":1e-320}"#[..],
        br#"{"access_token":"t","expires_in":5e-324}"#,
        br#"{"access_token":"t","expires_in":"1e-12"}"#,
        br#"{"access_token":"t","expires_in":"-0"}"#,
        br#"{"access_token":"t","expires_in":"NaN"}"#,
        br#"{"access_token":"t","expires_in":"inf"}"#,
        br#"{"access_token":"t","expires_in":"-inf"}"#,
        br#"{"access_token":"t","expires_in":1e400}"#,
        br#"{"access_token":"t","expires_in":-1e400}"#,
        br#"{"access_token":"t","expires_in":184467440737095516150}"#,
        br#"{"access_token":"t","expires_in":"\u0000"}"#,
        br#"{"access_token":"t","expires_in":5,"access_token":"u\nv"}"#,
        b"\xef\xbb\xbf{}",
        b"",
        b"\0",
        b"{\"access_token\":\"\xff\xfe\"}",
    ] {
        if let Err(error) = parse_login_answer(body) {
            assert!(matches!(error, Error::InvalidAnswer(_)), "{error:?}");
        } else {
            let token = parse_login_answer(body).unwrap();
            let lifetime = token.lifetime.unwrap();
            assert!(
                !lifetime.is_zero() && lifetime <= MAX_TOKEN_LIFETIME,
                "{}: {lifetime:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
