//! Real tokens (signed with `jsonwebtoken::encode` and the test-only keys in `testdata/`),
//! real header maps, every failure's exact Problem, and the config mistakes.

use std::path::PathBuf;

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

const SECRET: &str = "test-secret-key-do-not-use-in-production";

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/middleware/auth/testdata")
}

fn resolve(text: &str) -> Result<Auth, Mistake> {
    let raw: RawAuth = toml::from_str(text).expect("toml");
    Auth::resolve(&raw, "server.auth", &testdata())
}

fn auth(text: &str) -> Auth {
    resolve(text).unwrap_or_else(|m| panic!("{m:?}"))
}

/// The mistake's field and message.
fn mistake(text: &str) -> (String, String) {
    let (_, field, message) = resolve(text).expect_err("a config mistake");
    (field, message)
}

fn hs_config(extra: &str) -> String {
    format!("[jwt]\nalgorithm = \"HS256\"\nsecret = \"{SECRET}\"\n{extra}")
}

fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    encode(&Header::new(alg), claims, key).expect("encode")
}

fn hs256(claims: Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        &claims,
    )
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(testdata().join(name)).expect("test key")
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn bearer(token: &str) -> HeaderMap {
    headers(&[("authorization", &format!("Bearer {token}"))])
}

/// (status, slug, title, detail, WWW-Authenticate values) of a refusal.
fn refusal(
    result: Result<Value, Problem>,
) -> (u16, &'static str, &'static str, String, Vec<String>) {
    let problem = result.expect_err("a refusal");
    let challenges = problem
        .headers
        .iter()
        .filter(|(n, _)| *n == WWW_AUTHENTICATE)
        .map(|(_, v)| v.to_str().unwrap().to_owned())
        .collect();
    (
        problem.status.as_u16(),
        problem.slug,
        problem.title,
        problem.detail,
        challenges,
    )
}

/// Asserts a JWT 401 "JWT validation failed" with `detail` and its challenge.
fn assert_invalid(result: Result<Value, Problem>, detail: &str) {
    let (status, slug, title, got, challenges) = refusal(result);
    assert_eq!(
        (status, slug, title),
        (401, "unauthorized", "JWT validation failed")
    );
    assert_eq!(got, detail);
    assert_eq!(
        challenges,
        [format!(
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"{detail}\""
        )]
    );
}

fn valid_claims() -> Value {
    json!({"sub": "user123", "exp": now() + 3600})
}

// ---------------------------------------------------------------- JWT: success and header

#[test]
fn a_valid_hs256_token_yields_its_claims() {
    let auth = auth(&hs_config(""));
    let claims = json!({"sub": "user123", "exp": now() + 3600, "role": "admin"});
    let principal = auth
        .authenticate(&bearer(&hs256(claims.clone())), None)
        .unwrap();
    assert_eq!(principal, json!({"scheme": "jwt", "claims": claims}));
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_spaces_are_tolerated() {
    let auth = auth(&hs_config(""));
    let token = hs256(valid_claims());
    for header in [format!("bearer {token}"), format!("BEARER   {token}")] {
        let map = headers(&[("authorization", &header)]);
        assert!(auth.authenticate(&map, None).is_ok(), "{header}");
    }
}

#[test]
fn a_missing_header_asks_for_a_bearer_token() {
    let (status, slug, title, detail, challenges) =
        refusal(auth(&hs_config("")).authenticate(&HeaderMap::new(), None));
    assert_eq!((status, slug), (401, "unauthorized"));
    assert_eq!(title, "Missing or invalid Authorization header");
    assert_eq!(detail, "Expected 'Authorization: Bearer <token>'");
    assert_eq!(challenges, ["Bearer realm=\"api\""]);
}

#[test]
fn another_scheme_or_no_scheme_is_an_invalid_format() {
    let auth = auth(&hs_config(""));
    let token = hs256(valid_claims());
    for header in [
        "Basic dXNlcjpwYXNz".to_owned(),
        token.clone(),
        format!("Bearer{token}"),
        "Bearer".to_owned(),
    ] {
        let (status, _, title, detail, challenges) =
            refusal(auth.authenticate(&headers(&[("authorization", &header)]), None));
        assert_eq!(status, 401);
        assert_eq!(title, "Invalid Authorization header format", "{header}");
        assert_eq!(
            detail,
            "Authorization header must use Bearer scheme: 'Bearer <token>'"
        );
        assert!(challenges[0].starts_with("Bearer realm=\"api\", error=\"invalid_token\""));
    }
}

// ---------------------------------------------------------------- JWT: malformed tokens

fn malformed(auth: &Auth, header: &str) -> String {
    let (status, slug, title, detail, challenges) =
        refusal(auth.authenticate(&headers(&[("authorization", header)]), None));
    assert_eq!(
        (status, slug, title),
        (401, "unauthorized", "Malformed JWT token")
    );
    assert!(challenges[0].contains("error=\"invalid_token\""));
    detail
}

#[test]
fn tokens_without_three_parts_are_malformed() {
    let auth = auth(&hs_config(""));
    assert_eq!(
        malformed(&auth, "Bearer invalid.token"),
        "Malformed JWT token: expected 3 parts separated by dots, found 2"
    );
    assert_eq!(
        malformed(&auth, "Bearer a.b.c.d"),
        "Malformed JWT token: expected 3 parts separated by dots, found 4"
    );
    assert_eq!(
        malformed(&auth, "Bearer    "),
        "Malformed JWT token: the Bearer token is empty"
    );
}

#[test]
fn undecodable_parts_are_malformed_and_say_what() {
    let auth = auth(&hs_config(""));
    let detail = malformed(&auth, "Bearer !!!.abc.def");
    assert_eq!(
        detail,
        "Malformed JWT token: the header is not valid base64url"
    );
    // A good header with a signature that is not base64url: a bad signature.
    let good = hs256(valid_claims());
    let (head, rest) = good.split_once('.').unwrap();
    let payload = rest.split('.').next().unwrap();
    assert_invalid(
        auth.authenticate(&bearer(&format!("{head}.{payload}.!!!")), None),
        "Token signature is invalid",
    );
    // Valid base64url, not JSON: "hello" / "world".
    let detail = malformed(&auth, "Bearer aGVsbG8.d29ybGQ.c2ln");
    assert!(detail.contains("JSON"), "{detail}");
    // A good header and signature over claims that are a JSON array, not an object.
    let token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        &json!([1, 2]),
    );
    let detail = malformed(&auth, &format!("Bearer {token}"));
    assert!(
        detail.contains("not a JSON object") || detail.contains("JSON"),
        "{detail}"
    );
}

#[test]
fn an_oversized_header_is_refused_before_decoding() {
    let auth = auth(&hs_config(""));
    let header = format!(
        "Bearer {}.{}.{}",
        "a".repeat(4000),
        "b".repeat(4000),
        "c".repeat(300)
    );
    assert_eq!(
        malformed(&auth, &header),
        "Malformed JWT token: the Authorization header is longer than 8192 bytes"
    );
}

#[test]
fn client_input_in_a_detail_is_cut_and_made_header_safe() {
    let long = "é".repeat(300);
    let cut = bounded(&long);
    assert!(cut.len() <= 200 && cut.len() >= 198);
    assert!(long.starts_with(cut));
    let header = jwt_challenge_of("a \"quoted\" \\ ü");
    assert_eq!(
        header,
        "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"a 'quoted' / ?\""
    );
}

fn jwt_challenge_of(detail: &str) -> String {
    let value = super::jwt::token_challenge(detail);
    value.to_str().unwrap().to_owned()
}

// ---------------------------------------------------------------- JWT: claims

#[test]
fn exp_is_checked_with_leeway() {
    let lenient = auth(&hs_config(""));
    let strict = auth(&hs_config("leeway = 0"));
    let recent = hs256(json!({"sub": "u", "exp": now() - 30}));
    assert!(lenient.authenticate(&bearer(&recent), None).is_ok());
    assert_invalid(
        strict.authenticate(&bearer(&recent), None),
        "Token has expired",
    );
    let old = hs256(json!({"sub": "u", "exp": now() - 120}));
    assert_invalid(
        lenient.authenticate(&bearer(&old), None),
        "Token has expired",
    );
}

#[test]
fn nbf_is_checked_with_leeway() {
    let lenient = auth(&hs_config("leeway = 60"));
    let soon = hs256(json!({"exp": now() + 3600, "nbf": now() + 30}));
    assert!(lenient.authenticate(&bearer(&soon), None).is_ok());
    let later = hs256(json!({"exp": now() + 3600, "nbf": now() + 600}));
    assert_invalid(
        lenient.authenticate(&bearer(&later), None),
        "Token is not valid yet",
    );
}

#[test]
fn exp_is_required_unless_turned_off() {
    let token = hs256(json!({"sub": "u"}));
    assert_invalid(
        auth(&hs_config("")).authenticate(&bearer(&token), None),
        "Token has no expiration ('exp' claim)",
    );
    assert!(auth(&hs_config("require_exp = false"))
        .authenticate(&bearer(&token), None)
        .is_ok());
    let text = hs256(json!({"exp": "tomorrow"}));
    assert_invalid(
        auth(&hs_config("")).authenticate(&bearer(&text), None),
        "Token claim 'exp' is not a number",
    );
}

#[test]
fn checks_run_in_order_exp_nbf_iss_aud() {
    let auth = auth(&hs_config(
        "issuer = \"https://auth.example.com\"\naudience = \"https://api.example.com\"",
    ));
    let all_bad = json!({"exp": now() - 600, "nbf": now() + 600, "iss": "x", "aud": "y"});
    assert_invalid(
        auth.authenticate(&bearer(&hs256(all_bad)), None),
        "Token has expired",
    );
    let nbf_iss_aud = json!({"exp": now() + 600, "nbf": now() + 600, "iss": "x", "aud": "y"});
    assert_invalid(
        auth.authenticate(&bearer(&hs256(nbf_iss_aud)), None),
        "Token is not valid yet",
    );
    let iss_aud = json!({"exp": now() + 600, "iss": "x", "aud": "y"});
    assert_invalid(
        auth.authenticate(&bearer(&hs256(iss_aud)), None),
        "Token issuer is invalid, expected 'https://auth.example.com'",
    );
    let aud = json!({"exp": now() + 600, "iss": "https://auth.example.com", "aud": "y"});
    assert_invalid(
        auth.authenticate(&bearer(&hs256(aud)), None),
        "Token audience is invalid",
    );
}

#[test]
fn issuer_lists_name_every_accepted_issuer() {
    let auth = auth(&hs_config(
        "issuer = [\"https://a\", \"https://b\", \"https://c\"]",
    ));
    let ok = hs256(json!({"exp": now() + 60, "iss": "https://b"}));
    assert!(auth.authenticate(&bearer(&ok), None).is_ok());
    let missing = hs256(json!({"exp": now() + 60}));
    assert_invalid(
        auth.authenticate(&bearer(&missing), None),
        "Token issuer is invalid, expected 'https://a', 'https://b' or 'https://c'",
    );
}

#[test]
fn audience_string_or_list_on_either_side() {
    let single = auth(&hs_config("audience = \"https://api.example.com\""));
    let listed = auth(&hs_config(
        "audience = [\"https://other.example.com\", \"https://api.example.com\"]",
    ));
    let as_string = hs256(json!({"exp": now() + 60, "aud": "https://api.example.com"}));
    let as_list =
        hs256(json!({"exp": now() + 60, "aud": ["https://x", "https://api.example.com"]}));
    for auth in [&single, &listed] {
        assert!(auth.authenticate(&bearer(&as_string), None).is_ok());
        assert!(auth.authenticate(&bearer(&as_list), None).is_ok());
    }
    let none = hs256(json!({"exp": now() + 60}));
    assert_invalid(
        single.authenticate(&bearer(&none), None),
        "Token audience is invalid",
    );
    let other = hs256(json!({"exp": now() + 60, "aud": ["https://x"]}));
    assert_invalid(
        listed.authenticate(&bearer(&other), None),
        "Token audience is invalid",
    );
    // Without `audience`, the token's aud is not checked.
    assert!(auth(&hs_config(""))
        .authenticate(&bearer(&other), None)
        .is_ok());
}

#[test]
fn missing_required_claims_are_a_403_naming_them() {
    let cases = [
        ("[\"role\"]", "Required claim 'role' missing from JWT"),
        (
            "[\"role\", \"permissions\"]",
            "Required claims 'role' and 'permissions' missing from JWT",
        ),
        (
            "[\"a\", \"b\", \"c\"]",
            "Required claims 'a', 'b' and 'c' missing from JWT",
        ),
    ];
    let token = hs256(json!({"exp": now() + 60, "sub": "u"}));
    for (list, expected) in cases {
        let auth = auth(&hs_config(&format!("required_claims = {list}")));
        let (status, slug, title, detail, challenges) =
            refusal(auth.authenticate(&bearer(&token), None));
        assert_eq!((status, slug, title), (403, "forbidden", "Forbidden"));
        assert_eq!(detail, expected);
        assert_eq!(
            challenges,
            ["Bearer realm=\"api\", error=\"insufficient_scope\""]
        );
    }
    let auth = auth(&hs_config("required_claims = [\"role\", \"sub\"]"));
    let null_role = hs256(json!({"exp": now() + 60, "sub": "u", "role": null}));
    assert_eq!(
        refusal(auth.authenticate(&bearer(&null_role), None)).3,
        "Required claim 'role' missing from JWT"
    );
    let with_role = hs256(json!({"exp": now() + 60, "sub": "u", "role": "admin"}));
    assert!(auth.authenticate(&bearer(&with_role), None).is_ok());
}

// ---------------------------------------------------------------- JWT: signatures and keys

#[test]
fn a_bad_signature_or_a_wrong_algorithm_is_an_invalid_signature() {
    let auth = auth(&hs_config(""));
    let other = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another secret").unwrap(),
        &valid_claims(),
    );
    assert_invalid(
        auth.authenticate(&bearer(&other), None),
        "Token signature is invalid",
    );
    let hs384 = sign(
        Algorithm::HS384,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        &valid_claims(),
    );
    assert_invalid(
        auth.authenticate(&bearer(&hs384), None),
        "Token signature is invalid",
    );
    // alg "none", no signature: {"alg":"none","typ":"JWT"}.{"sub":"u"}.
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1In0.";
    assert_invalid(
        auth.authenticate(&bearer(none), None),
        "Token signature is invalid",
    );
    let rs256 = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&pem("test-only-rsa-private.pem")).unwrap(),
        &valid_claims(),
    );
    assert_invalid(
        auth.authenticate(&bearer(&rs256), None),
        "Token signature is invalid",
    );
}

#[test]
fn rsa_ec_and_ed_tokens_verify_with_their_public_keys() {
    let cases = [
        (
            "RS256",
            "test-only-rsa-public.pem",
            EncodingKey::from_rsa_pem(&pem("test-only-rsa-private.pem")),
        ),
        (
            "PS256",
            "test-only-rsa-public.pem",
            EncodingKey::from_rsa_pem(&pem("test-only-rsa-private.pem")),
        ),
        (
            "ES256",
            "test-only-ec-p256-public.pem",
            EncodingKey::from_ec_pem(&pem("test-only-ec-p256-private.pem")),
        ),
        (
            "ES384",
            "test-only-ec-p384-public.pem",
            EncodingKey::from_ec_pem(&pem("test-only-ec-p384-private.pem")),
        ),
        (
            "EdDSA",
            "test-only-ed25519-public.pem",
            EncodingKey::from_ed_pem(&pem("test-only-ed25519-private.pem")),
        ),
    ];
    for (alg, public, private) in cases {
        let auth = auth(&format!(
            "[jwt]\nalgorithm = \"{alg}\"\npublic_key_file = \"{public}\"\n"
        ));
        let key = private.unwrap();
        let token = sign(alg.parse().unwrap(), &key, &valid_claims());
        let principal = auth
            .authenticate(&bearer(&token), None)
            .unwrap_or_else(|p| panic!("{alg}: {p:?}"));
        assert_eq!(principal["claims"]["sub"], "user123");
        // Tampered claims: same header and signature, other payload.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = hs256(json!({"sub": "admin", "exp": now() + 60}));
        parts[1] = forged.split('.').nth(1).unwrap();
        assert_invalid(
            auth.authenticate(&bearer(&parts.join(".")), None),
            "Token signature is invalid",
        );
        // An HS256 token (the classic key-confusion attack) is refused.
        assert_invalid(
            auth.authenticate(&bearer(&forged), None),
            "Token signature is invalid",
        );
    }
}

#[test]
fn a_family_may_list_several_algorithms() {
    let auth = auth("[jwt]\nalgorithms = [\"RS256\", \"PS256\"]\npublic_key_file = \"test-only-rsa-public.pem\"\n");
    let key = EncodingKey::from_rsa_pem(&pem("test-only-rsa-private.pem")).unwrap();
    for alg in [Algorithm::RS256, Algorithm::PS256] {
        let token = sign(alg, &key, &valid_claims());
        assert!(auth.authenticate(&bearer(&token), None).is_ok(), "{alg:?}");
    }
    let rs512 = sign(Algorithm::RS512, &key, &valid_claims());
    assert_invalid(
        auth.authenticate(&bearer(&rs512), None),
        "Token signature is invalid",
    );
}

// ---------------------------------------------------------------- API keys

const KEYS: &str = "[api_key]\nkeys = [\"sk_test_123456\", \"sk_test_789012\"]\n";

#[test]
fn a_configured_key_in_the_header_yields_its_index() {
    let auth = auth(KEYS);
    let first = auth.authenticate(&headers(&[("x-api-key", "sk_test_123456")]), None);
    assert_eq!(first.unwrap(), json!({"scheme": "api_key", "key_index": 0}));
    // Rotation: the second key is as good as the first.
    let second = auth.authenticate(&headers(&[("X-API-Key", "sk_test_789012")]), None);
    assert_eq!(
        second.unwrap(),
        json!({"scheme": "api_key", "key_index": 1})
    );
}

#[test]
fn a_wrong_key_is_invalid() {
    let auth = auth(KEYS);
    for wrong in [
        "invalid_key_12345",
        "sk_test_12345",
        "sk_test_1234567",
        "sk_test_123456 x",
    ] {
        let (status, slug, title, detail, challenges) =
            refusal(auth.authenticate(&headers(&[("x-api-key", wrong)]), None));
        assert_eq!(
            (status, slug, title),
            (401, "unauthorized", "Invalid API key")
        );
        assert_eq!(detail, "The provided API key is not valid");
        assert_eq!(challenges, ["ApiKey realm=\"api\", header=\"X-API-Key\""]);
    }
}

#[test]
fn a_missing_key_names_where_to_send_it() {
    let (status, _, title, detail, challenges) =
        refusal(auth(KEYS).authenticate(&headers(&[("x-api-key", "")]), Some("a=b")));
    assert_eq!((status, title), (401, "Missing API key"));
    assert_eq!(detail, "Expected 'X-API-Key' header with valid API key");
    assert_eq!(challenges, ["ApiKey realm=\"api\", header=\"X-API-Key\""]);
    let with_query = auth(&format!("{KEYS}query = \"api_key\"\n"));
    let (_, _, _, detail, _) = refusal(with_query.authenticate(&HeaderMap::new(), None));
    assert_eq!(
        detail,
        "Expected 'X-API-Key' header or 'api_key' query parameter with valid API key"
    );
}

#[test]
fn the_query_parameter_is_accepted_only_when_configured() {
    let header_only = auth(KEYS);
    let query = Some("x=1&api_key=sk_test_123456");
    assert_eq!(
        refusal(header_only.authenticate(&HeaderMap::new(), query)).2,
        "Missing API key"
    );
    let with_query = auth(&format!("{KEYS}query = \"api_key\"\n"));
    assert_eq!(
        with_query.authenticate(&HeaderMap::new(), query).unwrap()["key_index"],
        0
    );
    // Percent-encoding is decoded; the header wins over the query.
    assert_eq!(
        with_query
            .authenticate(&HeaderMap::new(), Some("api_key=sk%5Ftest%5F789012"))
            .unwrap()["key_index"],
        1
    );
    let both = headers(&[("x-api-key", "sk_test_789012")]);
    assert_eq!(
        with_query
            .authenticate(&both, Some("api_key=sk_test_123456"))
            .unwrap()["key_index"],
        1
    );
    assert_eq!(
        refusal(with_query.authenticate(&HeaderMap::new(), Some("api_key=nope"))).2,
        "Invalid API key"
    );
}

#[test]
fn a_custom_header_is_read_and_named() {
    let auth = auth("[api_key]\nkeys = [\"k\"]\nheader = \"X-Service-Token\"\n");
    assert!(auth
        .authenticate(&headers(&[("x-service-token", "k")]), None)
        .is_ok());
    let (_, _, _, detail, challenges) =
        refusal(auth.authenticate(&headers(&[("x-api-key", "k")]), None));
    assert_eq!(
        detail,
        "Expected 'X-Service-Token' header with valid API key"
    );
    assert_eq!(
        challenges,
        ["ApiKey realm=\"api\", header=\"X-Service-Token\""]
    );
}

#[test]
fn constant_time_comparison_is_exact() {
    use super::api_key::constant_time_eq as eq;
    assert!(eq(b"abc", b"abc"));
    assert!(!eq(b"abd", b"abc"));
    assert!(!eq(b"ab", b"abc"));
    assert!(!eq(b"abcabc", b"abc"));
    assert!(!eq(&[b'a'; 256 + 3], b"aaa"));
    assert!(eq(b"", b""));
    assert!(!eq(b"", b"a"));
}

// ---------------------------------------------------------------- both schemes

fn both() -> Auth {
    auth(&format!("{}\n{KEYS}", hs_config("")))
}

#[test]
fn with_both_an_authorization_header_is_decided_by_the_jwt_alone() {
    let auth = both();
    let mut map = bearer(&hs256(valid_claims()));
    map.insert("x-api-key", HeaderValue::from_static("sk_test_123456"));
    assert_eq!(auth.authenticate(&map, None).unwrap()["scheme"], "jwt");
    let mut bad_token = bearer("invalid.token");
    bad_token.insert("x-api-key", HeaderValue::from_static("sk_test_123456"));
    assert_eq!(
        refusal(auth.authenticate(&bad_token, None)).2,
        "Malformed JWT token"
    );
    let key_only = headers(&[("x-api-key", "sk_test_789012")]);
    assert_eq!(
        auth.authenticate(&key_only, None).unwrap(),
        json!({"scheme": "api_key", "key_index": 1})
    );
    assert_eq!(
        refusal(auth.authenticate(&headers(&[("x-api-key", "bad")]), None)).2,
        "Invalid API key"
    );
}

#[test]
fn with_both_and_no_credential_both_challenges_are_sent() {
    let (status, slug, title, detail, challenges) =
        refusal(both().authenticate(&HeaderMap::new(), None));
    assert_eq!(
        (status, slug, title),
        (401, "unauthorized", "Missing credentials")
    );
    assert_eq!(
        detail,
        "Expected 'Authorization: Bearer <token>' header or 'X-API-Key' header with valid API key"
    );
    assert_eq!(
        challenges,
        [
            "Bearer realm=\"api\"",
            "ApiKey realm=\"api\", header=\"X-API-Key\""
        ]
    );
}

// ---------------------------------------------------------------- config mistakes

#[test]
fn algorithm_mistakes() {
    let (field, message) = mistake("[jwt]\nalgorithm = \"HS257\"\nsecret = \"s\"\n");
    assert_eq!(field, "server.auth.jwt.algorithm");
    assert!(
        message.contains("`HS257` is not a supported algorithm") && message.contains("EdDSA"),
        "{message}"
    );
    let (field, message) = mistake("[jwt]\nalgorithms = [\"HS256\", \"RS256\"]\nsecret = \"s\"\n");
    assert_eq!(field, "server.auth.jwt.algorithms");
    assert!(message.contains("mixes key families"), "{message}");
    let (field, message) =
        mistake("[jwt]\nalgorithm = \"HS256\"\nalgorithms = [\"HS256\"]\nsecret = \"s\"\n");
    assert_eq!(field, "server.auth.jwt.algorithm");
    assert!(message.contains("keep one"), "{message}");
    let (field, _) = mistake("[jwt]\nsecret = \"s\"\n");
    assert_eq!(field, "server.auth.jwt.algorithms");
    let (field, _) = mistake("[jwt]\nalgorithms = []\nsecret = \"s\"\n");
    assert_eq!(field, "server.auth.jwt.algorithms");
}

#[test]
fn secret_mistakes() {
    let (field, message) = mistake("[jwt]\nalgorithm = \"HS256\"\n");
    assert_eq!(field, "server.auth.jwt.secret");
    assert!(message.contains("secret_env"), "{message}");
    let (field, _) = mistake("[jwt]\nalgorithm = \"HS256\"\nsecret = \"\"\n");
    assert_eq!(field, "server.auth.jwt.secret");
    let (field, message) =
        mistake("[jwt]\nalgorithm = \"HS256\"\nsecret_env = \"SPIKARD_AUTH_TEST_UNSET_VAR\"\n");
    assert_eq!(field, "server.auth.jwt.secret_env");
    assert!(
        message.contains("SPIKARD_AUTH_TEST_UNSET_VAR is not set"),
        "{message}"
    );
    let (field, _) = mistake("[jwt]\nalgorithm = \"HS256\"\nsecret = \"s\"\npublic_key_file = \"test-only-rsa-public.pem\"\n");
    assert_eq!(field, "server.auth.jwt.public_key_file");
}

#[test]
fn secret_env_is_read_at_start_up() {
    // A name no other test uses; tests run in threads of one process.
    std::env::set_var("SPIKARD_AUTH_TEST_SECRET", SECRET);
    let auth = auth("[jwt]\nalgorithm = \"HS256\"\nsecret_env = \"SPIKARD_AUTH_TEST_SECRET\"\n");
    assert!(auth
        .authenticate(&bearer(&hs256(valid_claims())), None)
        .is_ok());
    std::env::set_var("SPIKARD_AUTH_TEST_EMPTY", "");
    let (field, message) =
        mistake("[jwt]\nalgorithm = \"HS256\"\nsecret_env = \"SPIKARD_AUTH_TEST_EMPTY\"\n");
    assert_eq!(field, "server.auth.jwt.secret_env");
    assert!(
        message.contains("SPIKARD_AUTH_TEST_EMPTY is empty"),
        "{message}"
    );
}

#[test]
fn public_key_mistakes_name_the_file() {
    let (field, message) = mistake("[jwt]\nalgorithm = \"RS256\"\n");
    assert_eq!(field, "server.auth.jwt.public_key_file");
    assert!(message.contains("public_key_file = "), "{message}");
    let (field, _) = mistake("[jwt]\nalgorithm = \"RS256\"\nsecret = \"s\"\n");
    assert_eq!(field, "server.auth.jwt.secret");
    let (field, message) =
        mistake("[jwt]\nalgorithm = \"RS256\"\npublic_key_file = \"no-such.pem\"\n");
    assert_eq!(field, "server.auth.jwt.public_key_file");
    assert!(
        message.contains("cannot read") && message.contains("no-such.pem"),
        "{message}"
    );
    let (_, message) = mistake("[jwt]\nalgorithm = \"RS256\"\npublic_key_file = \"README.md\"\n");
    assert!(
        message.contains("README.md is not a PEM RSA public key"),
        "{message}"
    );
    let (_, message) =
        mistake("[jwt]\nalgorithm = \"RS256\"\npublic_key_file = \"test-only-rsa-private.pem\"\n");
    assert!(
        message.contains("holds a private key") && message.contains("-pubout"),
        "{message}"
    );
    let (_, message) = mistake(
        "[jwt]\nalgorithm = \"ES256\"\npublic_key_file = \"test-only-ec-p384-public.pem\"\n",
    );
    assert!(message.contains("cannot verify ES256"), "{message}");
    let (_, message) =
        mistake("[jwt]\nalgorithm = \"ES256\"\npublic_key_file = \"test-only-rsa-public.pem\"\n");
    assert!(message.contains("is not a PEM EC public key"), "{message}");
    let (_, message) = mistake(
        "[jwt]\nalgorithm = \"EdDSA\"\npublic_key_file = \"test-only-ec-p256-public.pem\"\n",
    );
    assert!(
        message.contains("is not a PEM Ed25519 public key")
            || message.contains("not a valid public key"),
        "{message}"
    );
}

#[test]
fn claim_setting_mistakes() {
    let (field, _) = mistake(&hs_config("leeway = -1"));
    assert_eq!(field, "server.auth.jwt.leeway");
    let (field, _) = mistake(&hs_config("audience = []"));
    assert_eq!(field, "server.auth.jwt.audience");
    let (field, _) = mistake(&hs_config("issuer = [\"a\", 1]"));
    assert_eq!(field, "server.auth.jwt.issuer");
    let (field, _) = mistake(&hs_config("required_claims = [\"\"]"));
    assert_eq!(field, "server.auth.jwt.required_claims");
    assert!(toml::from_str::<RawAuth>(&hs_config("leway = 5")).is_err());
}

#[test]
fn api_key_mistakes() {
    let (field, message) = mistake("[api_key]\nkeys = []\n");
    assert_eq!(field, "server.auth.api_key.keys");
    assert!(message.contains("is empty"), "{message}");
    let (field, message) = mistake("[api_key]\nkeys = [\"ok\", \"\"]\n");
    assert_eq!(field, "server.auth.api_key.keys");
    assert!(message.contains("key 2 is empty"), "{message}");
    let (field, _) = mistake("[api_key]\n");
    assert_eq!(field, "server.auth.api_key.keys");
    let (field, _) = mistake("[api_key]\nkeys = [\"a\"]\nheader = \"bad header\"\n");
    assert_eq!(field, "server.auth.api_key.header");
    let (field, _) = mistake("[api_key]\nkeys = [\"a\"]\nquery = \"\"\n");
    assert_eq!(field, "server.auth.api_key.query");
    let (field, _) = mistake("[api_key]\nkeys_env = \"SPIKARD_AUTH_TEST_UNSET_KEYS\"\n");
    assert_eq!(field, "server.auth.api_key.keys_env");
    // A short key is fine (fixtures use them).
    assert!(resolve("[api_key]\nkeys = [\"k\"]\n").is_ok());
}

#[test]
fn keys_env_is_comma_separated() {
    std::env::set_var("SPIKARD_AUTH_TEST_KEYS", "sk_one, sk_two");
    let auth = auth("[api_key]\nkeys_env = \"SPIKARD_AUTH_TEST_KEYS\"\n");
    let got = auth.authenticate(&headers(&[("x-api-key", "sk_two")]), None);
    assert_eq!(got.unwrap()["key_index"], 1);
    std::env::set_var("SPIKARD_AUTH_TEST_KEYS_EMPTY_ITEM", "sk_one,,sk_two");
    let (field, message) = mistake("[api_key]\nkeys_env = \"SPIKARD_AUTH_TEST_KEYS_EMPTY_ITEM\"\n");
    assert_eq!(field, "server.auth.api_key.keys_env");
    assert!(message.contains("key 2 is empty"), "{message}");
}

#[test]
fn the_resolved_policy_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    shared(&both());
}

#[test]
fn with_both_and_a_query_key_the_missing_detail_lists_three_ways() {
    let auth = auth(&format!("{}\n{KEYS}query = \"api_key\"\n", hs_config("")));
    assert_eq!(
        refusal(auth.authenticate(&HeaderMap::new(), None)).3,
        "Expected 'Authorization: Bearer <token>' header, 'X-API-Key' header or 'api_key' query parameter with valid API key"
    );
    assert_eq!(
        auth.authenticate(&HeaderMap::new(), Some("api_key=sk_test_123456"))
            .unwrap()["key_index"],
        0
    );
}

#[test]
fn table_mistakes() {
    let (field, message) = mistake("");
    assert_eq!(field, "server.auth");
    assert!(message.contains("[server.auth.jwt]"), "{message}");
    let (field, _) = mistake(&format!(
        "{}\n[api_key]\nkeys = [\"k\"]\nheader = \"Authorization\"\n",
        hs_config("")
    ));
    assert_eq!(field, "server.auth.api_key.header");
    assert!(toml::from_str::<RawAuth>("[basic]\nuser = \"x\"\n").is_err());
}

#[test]
fn spans_survive_the_policy_toggle() {
    use crate::middleware::policy::Toggle;
    #[derive(serde::Deserialize)]
    struct Server {
        auth: Toggle<RawAuth>,
    }
    let text = "# comment\n[auth.jwt]\nalgorithm = \"HS256\"\n\n[auth.api_key]\nkeys = []\n";
    let Toggle::On(raw) = toml::from_str::<Server>(text).unwrap().auth else {
        panic!("on");
    };
    let (offset, field, _) = Auth::resolve(&raw, "server.auth", &testdata()).unwrap_err();
    assert_eq!(field, "server.auth.jwt.secret");
    assert!(
        text[offset..].starts_with("[auth.jwt]") || text[offset..].starts_with("algorithm"),
        "{:?}",
        &text[offset..]
    );
}

#[test]
fn mistakes_point_at_their_line() {
    let text = "[jwt]\nalgorithm = \"HS256\"\nsecret = \"s\"\nleeway = -5\n";
    let (offset, _, _) = resolve(text).unwrap_err();
    assert_eq!(&text[offset..offset + 2], "-5");
}

// ---------------------------------------------------------------- conformance fixtures

/// Tokens copied from spikard-fixtures/testing_data/auth (signed with [`SECRET`]).
mod fixtures {
    pub const VALID: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyMTIzIiwiZXhwIjoyNjI2NzgzOTQ2LCJpYXQiOjE3NjI3ODM5NDYsImF1ZCI6WyJodHRwczovL2FwaS5leGFtcGxlLmNvbSJdLCJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20ifQ.TpRpCJeXROQ12-ehRCVZm6EgN7Dn6QpfoekxJvnzgQg";
    pub const EXPIRED: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyMTIzIiwiZXhwIjoxNjAwMDAwMDAwLCJpYXQiOjE1OTAwMDAwMDB9.n4oBw9XuO2aAJWi1e4Bz9Y_m2iEyJHGAODcetNuwYFo";
    pub const BAD_SIGNATURE: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyMTIzIiwiZXhwIjoyNTM0MDIzMDA3OTksImlhdCI6MTczMTI1MjAwMH0.invalid_signature_here";
    pub const BAD_AUDIENCE: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyMTIzIiwiZXhwIjoyNTM0MDIzMDA3OTk5LCJpYXQiOjE3MzEyNTIwMDAsImF1ZCI6WyJodHRwczovL3dyb25nLXNlcnZpY2UuY29tIl19.YR2a9fSJjhen7ksYFI2djSBSC7Pc29FDCloBGhkj3kU";
    pub const BAD_ISSUER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyMTIzIiwiZXhwIjoyNjI2NzgzOTQ2LCJpYXQiOjE2MDAwMDAwMDAsImF1ZCI6WyJodHRwczovL2FwaS5leGFtcGxlLmNvbSJdLCJpc3MiOiJodHRwczovL2V2aWwuY29tIn0.mbL5L04_hpaaiz0SPABap6ZWfBLu18aiexBjzwQ1nnA";
    pub const MULTIPLE_AUDIENCES: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyMTIzIiwiZXhwIjoyNjI2NzgzOTQ2LCJpYXQiOjE2MDAwMDAwMDAsImF1ZCI6WyJodHRwczovL2FwaS5leGFtcGxlLmNvbSIsImh0dHBzOi8vYWRtaW4uZXhhbXBsZS5jb20iXSwiaXNzIjoiaHR0cHM6Ly9hdXRoLmV4YW1wbGUuY29tIn0.9MBL_XccGXfu9cDUnCpQruDMOl2hHYydzeGn-20dQOs";
    pub const NO_PREFIX: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyMTIzIiwiZXhwIjoyNjI2NzgzOTQ2LCJpYXQiOjE3NjI3ODM5NDZ9.8yXqZ9jKCR0BwqJc7pN_QvD3mYLxHfWzUeIaGkTnOsA";
}

const FIXTURE_AUD_ISS: &str =
    "audience = [\"https://api.example.com\"]\nissuer = \"https://auth.example.com\"";

#[test]
fn fixture_01_and_12_valid_tokens_are_accepted() {
    let auth = auth(&hs_config(FIXTURE_AUD_ISS));
    for token in [fixtures::VALID, fixtures::MULTIPLE_AUDIENCES] {
        let principal = auth.authenticate(&bearer(token), None).unwrap();
        assert_eq!(principal["claims"]["sub"], "user123");
    }
}

#[test]
fn fixture_03_04_05_09_failures() {
    let plain = auth(&hs_config(""));
    assert_invalid(
        plain.authenticate(&bearer(fixtures::EXPIRED), None),
        "Token has expired",
    );
    assert_invalid(
        plain.authenticate(&bearer(fixtures::BAD_SIGNATURE), None),
        "Token signature is invalid",
    );
    let audience = auth(&hs_config("audience = [\"https://api.example.com\"]"));
    assert_invalid(
        audience.authenticate(&bearer(fixtures::BAD_AUDIENCE), None),
        "Token audience is invalid",
    );
    let issuer = auth(&hs_config(
        "issuer = \"https://auth.example.com\"\nleeway = 0",
    ));
    assert_invalid(
        issuer.authenticate(&bearer(fixtures::BAD_ISSUER), None),
        "Token issuer is invalid, expected 'https://auth.example.com'",
    );
}

#[test]
fn fixture_11_13_17_18() {
    let admin = auth(&hs_config(&format!(
        "{FIXTURE_AUD_ISS}\nrequired_claims = [\"role\", \"permissions\"]"
    )));
    let (status, slug, _, detail, _) = refusal(admin.authenticate(&bearer(fixtures::VALID), None));
    assert_eq!((status, slug), (403, "forbidden"));
    assert_eq!(
        detail,
        "Required claims 'role' and 'permissions' missing from JWT"
    );
    let plain = auth(&hs_config(""));
    let (_, _, title, detail, _) = refusal(plain.authenticate(&bearer("invalid.token"), None));
    assert_eq!(title, "Malformed JWT token");
    assert_eq!(
        detail,
        "Malformed JWT token: expected 3 parts separated by dots, found 2"
    );
    let (_, _, title, _, _) =
        refusal(plain.authenticate(&headers(&[("authorization", fixtures::NO_PREFIX)]), None));
    assert_eq!(title, "Invalid Authorization header format");
    let both = auth(&format!("{}\n{KEYS}", hs_config(FIXTURE_AUD_ISS)));
    let mut map = bearer(fixtures::VALID);
    map.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", fixtures::VALID)).unwrap(),
    );
    map.insert("x-api-key", HeaderValue::from_static("sk_test_123456"));
    assert_eq!(both.authenticate(&map, None).unwrap()["scheme"], "jwt");
}
