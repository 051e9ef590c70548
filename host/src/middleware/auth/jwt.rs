//! `[...auth.jwt]`: `Authorization: Bearer <JWT>`. `jsonwebtoken` verifies the signature and
//! decodes the claims (with its own claim checks off); the host then checks, in this order so
//! each failure has its own exact message: `exp` (with leeway), `nbf` (with leeway), `iss`,
//! `aud`, the required claims.
//!
//! The decoding key and `Validation` are built once at start-up; a request costs the decoding
//! `jsonwebtoken` does and the claims' JSON value, nothing more. An `Authorization` header
//! over [`MAX_AUTHORIZATION`] bytes is refused before any decoding.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::StatusCode;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::{bounded, quoted_list, static_challenge, unauthorized, Mistake, REALM};
use crate::problem::Problem;

/// Longest `Authorization` header decoded: 8 KiB. Real tokens are well under 2 KiB; a longer
/// header is refused as malformed without spending work on it.
pub const MAX_AUTHORIZATION: usize = 8 * 1024;

/// Default clock-skew allowance for `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY: u64 = 60;

/// Algorithm names accepted in `algorithm(s)`, in the order messages list them.
const ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// The JWT table as written.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    /// One accepted algorithm (or use `algorithms`).
    algorithm: Option<Spanned<String>>,
    /// Several accepted algorithms of one key family.
    algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    /// HS*: the shared secret.
    secret: Option<Spanned<String>>,
    /// HS*: the environment variable holding the shared secret.
    secret_env: Option<Spanned<String>>,
    /// RS*/PS*/ES*/EdDSA: PEM public key, relative to the config file's directory.
    public_key_file: Option<Spanned<String>>,
    /// Accepted audiences: a string or a list.
    audience: Option<Spanned<toml::Value>>,
    /// Accepted issuers: a string or a list.
    issuer: Option<Spanned<toml::Value>>,
    /// Clock skew allowed for `exp`/`nbf`, seconds.
    leeway: Option<Spanned<i64>>,
    /// Claims a token must carry (else 403).
    required_claims: Option<Spanned<Vec<Spanned<String>>>>,
    /// Whether a token without `exp` is refused (default true).
    require_exp: Option<bool>,
}

/// The resolved JWT scheme.
pub struct JwtAuth {
    key: DecodingKey,
    validation: Validation,
    audience: Option<Vec<String>>,
    issuer: Option<Vec<String>>,
    issuer_detail: String,
    leeway: f64,
    required_claims: Vec<String>,
    require_exp: bool,
    /// `Bearer realm="api"`: the challenge of a request without a token.
    challenge: HeaderValue,
    /// `Bearer realm="api", error="insufficient_scope"`: the challenge of a 403.
    insufficient_scope: HeaderValue,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("algorithms", &self.validation.algorithms)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .field("required_claims", &self.required_claims)
            .field("require_exp", &self.require_exp)
            .finish_non_exhaustive()
    }
}

/// A config mistake at `offset` on `field`.
fn mistake(offset: usize, field: &str, message: impl Into<String>) -> Mistake {
    (offset, field.to_owned(), message.into())
}

impl JwtAuth {
    /// Checks the table (`at` is its offset, for mistakes about a missing key) and loads the
    /// key. The key is probed with every configured algorithm, so a key that cannot verify
    /// them (a P-384 key for ES256, a private key, a truncated file) fails here, not on the
    /// first request.
    pub fn resolve(raw: &RawJwt, at: usize, field: &str, dir: &Path) -> Result<JwtAuth, Mistake> {
        if CryptoProvider::try_get_default().is_none() {
            return Err(mistake(at, field, "this build of the host has no JWT crypto provider (jsonwebtoken needs exactly one of its `rust_crypto` and `aws_lc_rs` features); rebuild it or remove the table"));
        }
        let algorithms = algorithms(raw, at, field)?;
        let family = algorithms[0].family();
        let key = match family {
            AlgorithmFamily::Hmac => secret_key(raw, at, field)?,
            _ => public_key(raw, at, field, dir, family)?,
        };
        probe(&key, &algorithms, raw, at, field)?;
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let audience = names(raw.audience.as_ref(), &format!("{field}.audience"))?;
        let issuer = names(raw.issuer.as_ref(), &format!("{field}.issuer"))?;
        let issuer_detail = match &issuer {
            Some(list) => format!(
                "Token issuer is invalid, expected {}",
                quoted_list(list, " or ")
            ),
            None => String::new(),
        };
        let leeway = match &raw.leeway {
            None => DEFAULT_LEEWAY,
            Some(s) => u64::try_from(*s.get_ref()).map_err(|_| {
                mistake(
                    s.span().start,
                    &format!("{field}.leeway"),
                    "must be a number of seconds, 0 or more (default 60)",
                )
            })?,
        };
        Ok(JwtAuth {
            key,
            validation,
            audience,
            issuer,
            issuer_detail,
            leeway: leeway as f64,
            required_claims: required_claims(raw, field)?,
            require_exp: raw.require_exp.unwrap_or(true),
            challenge: static_challenge(format!("Bearer realm=\"{REALM}\"")),
            insufficient_scope: static_challenge(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\""
            )),
        })
    }

    /// The challenge of a request without a token: `Bearer realm="api"`.
    pub fn challenge(&self) -> HeaderValue {
        self.challenge.clone()
    }

    /// Decides a request by its `Authorization` header (absent: the 401 asking for one).
    pub fn authenticate(&self, authorization: Option<&HeaderValue>) -> Result<Value, Problem> {
        let Some(header) = authorization else {
            return Err(unauthorized(
                "Missing or invalid Authorization header",
                "Expected 'Authorization: Bearer <token>'",
            )
            .with_header(WWW_AUTHENTICATE, self.challenge()));
        };
        let token = bearer_token(header.as_bytes())?;
        let claims = self.decode(token)?;
        self.check_claims(&claims)?;
        let mut principal = Map::with_capacity(2);
        principal.insert("scheme".into(), Value::from("jwt"));
        principal.insert("claims".into(), Value::Object(claims));
        Ok(Value::Object(principal))
    }

    /// Verifies the signature and decodes the claims object.
    fn decode(&self, token: &str) -> Result<Map<String, Value>, Problem> {
        let parts = token.split('.').count();
        if parts != 3 {
            return Err(malformed(&format!(
                "expected 3 parts separated by dots, found {parts}"
            )));
        }
        match jsonwebtoken::decode::<Value>(token, &self.key, &self.validation) {
            Ok(data) => match data.claims {
                Value::Object(claims) => Ok(claims),
                _ => Err(malformed("the claims are not a JSON object")),
            },
            Err(error) => Err(decode_failure(token, error.kind())),
        }
    }

    /// The claim checks, in their fixed order.
    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), Problem> {
        let now = now();
        match claims.get("exp") {
            None if self.require_exp => {
                return Err(invalid("Token has no expiration ('exp' claim)"))
            }
            None => {}
            Some(exp) => match exp.as_f64() {
                Some(exp) if exp + self.leeway < now => return Err(invalid("Token has expired")),
                Some(_) => {}
                None => return Err(invalid("Token claim 'exp' is not a number")),
            },
        }
        if let Some(nbf) = claims.get("nbf") {
            match nbf.as_f64() {
                Some(nbf) if nbf > now + self.leeway => {
                    return Err(invalid("Token is not valid yet"))
                }
                Some(_) => {}
                None => return Err(invalid("Token claim 'nbf' is not a number")),
            }
        }
        if let Some(issuers) = &self.issuer {
            let ok = matches!(claims.get("iss"), Some(Value::String(iss)) if issuers.contains(iss));
            if !ok {
                return Err(invalid(self.issuer_detail.clone()));
            }
        }
        if let Some(audience) = &self.audience {
            if !audience_matches(claims.get("aud"), audience) {
                return Err(invalid("Token audience is invalid"));
            }
        }
        self.check_required(claims)
    }

    /// 403 naming every required claim the token lacks (a `null` counts as lacking).
    fn check_required(&self, claims: &Map<String, Value>) -> Result<(), Problem> {
        let present = |name: &String| claims.get(name).is_some_and(|v| !v.is_null());
        if self.required_claims.iter().all(present) {
            return Ok(());
        }
        let missing: Vec<&String> = self
            .required_claims
            .iter()
            .filter(|n| !present(n))
            .collect();
        let detail = match missing.len() {
            1 => format!(
                "Required claim {} missing from JWT",
                quoted_list(&missing, " and ")
            ),
            _ => format!(
                "Required claims {} missing from JWT",
                quoted_list(&missing, " and ")
            ),
        };
        Err(
            Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
                .with_header(WWW_AUTHENTICATE, self.insufficient_scope.clone()),
        )
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, one or more spaces), or the 401.
fn bearer_token(header: &[u8]) -> Result<&str, Problem> {
    if header.len() > MAX_AUTHORIZATION {
        return Err(malformed(&format!(
            "the Authorization header is longer than {MAX_AUTHORIZATION} bytes"
        )));
    }
    let scheme_end = header.iter().position(|&b| b == b' ');
    let is_bearer = scheme_end.is_some_and(|end| header[..end].eq_ignore_ascii_case(b"Bearer"));
    let Some(end) = scheme_end.filter(|_| is_bearer) else {
        return Err(unauthorized(
            "Invalid Authorization header format",
            "Authorization header must use Bearer scheme: 'Bearer <token>'",
        )
        .with_header(
            WWW_AUTHENTICATE,
            token_challenge("Authorization header must use Bearer scheme: 'Bearer <token>'"),
        ));
    };
    let token = header[end..].trim_ascii();
    if token.is_empty() {
        return Err(malformed("the Bearer token is empty"));
    }
    std::str::from_utf8(token).map_err(|_| malformed("the token is not ASCII text"))
}

/// The 401 for a decode error.
fn decode_failure(token: &str, kind: &ErrorKind) -> Problem {
    match kind {
        // jsonwebtoken decodes the header, then the signature, and the claims only once the
        // signature is verified: with a decodable header, the undecodable part is the
        // signature (as `...invalid_signature_here` is).
        ErrorKind::Base64(_) if header_decodes(token) => invalid("Token signature is invalid"),
        ErrorKind::Base64(_) => malformed("the header is not valid base64url"),
        ErrorKind::Utf8(_) => malformed("a part is not UTF-8 text"),
        ErrorKind::Json(error) if !header_names_unknown_algorithm(token) => {
            malformed(&format!("a part is not the JSON expected ({error})"))
        }
        ErrorKind::InvalidToken => malformed("expected 3 parts separated by dots"),
        // Everything else is the signature or the algorithm not matching the key:
        // InvalidSignature, InvalidAlgorithm, an unknown `alg`, a key the verifier refused.
        _ => invalid("Token signature is invalid"),
    }
}

/// Whether the token's first part is base64url.
fn header_decodes(token: &str) -> bool {
    base64url(token.split('.').next().unwrap_or_default()).is_some()
}

/// Whether the token's header is a JSON object whose `alg` is a string naming no algorithm
/// `jsonwebtoken` knows (`none`, say): a wrong algorithm, not a malformed token.
fn header_names_unknown_algorithm(token: &str) -> bool {
    let header = token.split('.').next().unwrap_or_default();
    let Some(bytes) = base64url(header) else {
        return false;
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => {
            matches!(map.get("alg"), Some(Value::String(alg)) if !ALGORITHMS.contains(&alg.as_str()))
        }
        _ => false,
    }
}

/// Decodes unpadded base64url (the failure path's look at a header; `jsonwebtoken` does the
/// real decoding).
fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Whether the token's `aud` (a string or a list of strings) names one of `accepted`.
fn audience_matches(aud: Option<&Value>, accepted: &[String]) -> bool {
    match aud {
        Some(Value::String(one)) => accepted.contains(one),
        Some(Value::Array(list)) => list
            .iter()
            .any(|v| matches!(v, Value::String(s) if accepted.contains(s))),
        _ => false,
    }
}

/// Seconds since the Unix epoch.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs() as f64)
}

/// 401 "Malformed JWT token"; `what` may repeat client input, so it is cut to 200 bytes.
fn malformed(what: &str) -> Problem {
    let detail = format!("Malformed JWT token: {}", bounded(what));
    let challenge = token_challenge(&detail);
    unauthorized("Malformed JWT token", detail).with_header(WWW_AUTHENTICATE, challenge)
}

/// 401 "JWT validation failed".
fn invalid(detail: impl Into<String>) -> Problem {
    let detail = detail.into();
    let challenge = token_challenge(&detail);
    unauthorized("JWT validation failed", detail).with_header(WWW_AUTHENTICATE, challenge)
}

/// `Bearer realm="api", error="invalid_token", error_description="..."` (RFC 6750 §3). The
/// description keeps only the characters §3 allows: `"` and `\` become `'` and `/`, anything
/// outside printable ASCII `?`.
pub(super) fn token_challenge(detail: &str) -> HeaderValue {
    let description: String = detail
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect();
    static_challenge(format!(
        "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{description}\""
    ))
}

/// `algorithm` or `algorithms` (exactly one), every name known, all of one key family.
fn algorithms(raw: &RawJwt, at: usize, field: &str) -> Result<Vec<Algorithm>, Mistake> {
    let names: Vec<&Spanned<String>> = match (&raw.algorithm, &raw.algorithms) {
        (Some(one), None) => vec![one],
        (None, Some(list)) if !list.get_ref().is_empty() => list.get_ref().iter().collect(),
        (None, Some(list)) => {
            return Err(mistake(list.span().start, &format!("{field}.algorithms"), "is empty; list the algorithms your tokens are signed with, e.g. [\"HS256\"]"))
        }
        (Some(one), Some(_)) => {
            return Err(mistake(one.span().start, &format!("{field}.algorithm"), "`algorithm` and `algorithms` are both set; keep one of them"))
        }
        (None, None) => {
            return Err(mistake(at, &format!("{field}.algorithms"), "is missing; add `algorithm = \"HS256\"` (or the algorithm your tokens are signed with)"))
        }
    };
    let key = if raw.algorithm.is_some() {
        "algorithm"
    } else {
        "algorithms"
    };
    let mut out: Vec<Algorithm> = Vec::with_capacity(names.len());
    for name in names {
        let alg = name
            .get_ref()
            .parse::<Algorithm>()
            .ok()
            .filter(|_| ALGORITHMS.contains(&name.get_ref().as_str()))
            .ok_or_else(|| {
                mistake(
                    name.span().start,
                    &format!("{field}.{key}"),
                    format!(
                        "`{}` is not a supported algorithm; use one of {}",
                        name.get_ref(),
                        ALGORITHMS.join(", ")
                    ),
                )
            })?;
        if let Some(first) = out.first() {
            if first.family() != alg.family() {
                return Err(mistake(name.span().start, &format!("{field}.{key}"), format!("mixes key families ({first:?} and {alg:?}); one table verifies with one key, so list algorithms of one family only (HS*, RS*/PS*, ES* or EdDSA)")));
            }
        }
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

/// The HMAC secret from `secret` or `secret_env` (exactly one, non-empty).
fn secret_key(raw: &RawJwt, at: usize, field: &str) -> Result<DecodingKey, Mistake> {
    if let Some(file) = &raw.public_key_file {
        return Err(mistake(file.span().start, &format!("{field}.public_key_file"), "HS* algorithms verify with a shared secret, not a public key; use `secret` or `secret_env` (or an RS*/PS*/ES*/EdDSA algorithm)"));
    }
    let secret = match (&raw.secret, &raw.secret_env) {
        (Some(secret), None) if secret.get_ref().is_empty() => {
            return Err(mistake(secret.span().start, &format!("{field}.secret"), "is empty; set the shared secret the tokens are signed with"))
        }
        (Some(secret), None) => secret.get_ref().clone(),
        (None, Some(var)) => env_value(var, &format!("{field}.secret_env"))?,
        (Some(secret), Some(_)) => {
            return Err(mistake(secret.span().start, &format!("{field}.secret"), "`secret` and `secret_env` are both set; keep one of them"))
        }
        (None, None) => {
            return Err(mistake(at, &format!("{field}.secret"), "HS* algorithms need the shared secret; add `secret_env = \"JWT_SECRET\"` (read from the environment at start-up) or `secret = \"...\"`"))
        }
    };
    DecodingKey::from_secret(secret.as_bytes()).map_err(|e| {
        mistake(
            at,
            &format!("{field}.secret"),
            format!("cannot be used as an HMAC key: {e}"),
        )
    })
}

/// A non-empty environment variable named by `var`, read at start-up.
pub(super) fn env_value(var: &Spanned<String>, field: &str) -> Result<String, Mistake> {
    let name = var.get_ref();
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        Ok(_) => Err(mistake(
            var.span().start,
            field,
            format!("the environment variable {name} is empty; set it before starting the host"),
        )),
        Err(std::env::VarError::NotPresent) => Err(mistake(
            var.span().start,
            field,
            format!("the environment variable {name} is not set; set it before starting the host"),
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err(mistake(
            var.span().start,
            field,
            format!("the environment variable {name} is not valid UTF-8; set it to text"),
        )),
    }
}

/// The public key of `public_key_file` for an asymmetric family.
fn public_key(
    raw: &RawJwt,
    at: usize,
    field: &str,
    dir: &Path,
    family: AlgorithmFamily,
) -> Result<DecodingKey, Mistake> {
    if let Some(s) = raw.secret.as_ref().or(raw.secret_env.as_ref()) {
        let key = if raw.secret.is_some() {
            "secret"
        } else {
            "secret_env"
        };
        return Err(mistake(s.span().start, &format!("{field}.{key}"), "RS*/PS*/ES*/EdDSA algorithms verify with a public key, not a secret; use `public_key_file` (or an HS* algorithm)"));
    }
    let Some(file) = &raw.public_key_file else {
        return Err(mistake(at, &format!("{field}.public_key_file"), "RS*/PS*/ES*/EdDSA algorithms need the issuer's public key; add `public_key_file = \"keys/jwt.pem\"` (PEM, relative to the config file)"));
    };
    let field = format!("{field}.public_key_file");
    let path = dir.join(file.get_ref());
    let bad = |message: String| mistake(file.span().start, &field, message);
    let pem = std::fs::read(&path).map_err(|e| {
        bad(format!(
            "cannot read {}: {e}; point it at the PEM public key (relative to the config file)",
            path.display()
        ))
    })?;
    if pem.windows(11).any(|w| w == b"PRIVATE KEY") {
        return Err(bad(format!("{} holds a private key; the host needs only the public key: `openssl pkey -in {} -pubout -out public.pem`", path.display(), path.display())));
    }
    let (kind, parsed) = match family {
        AlgorithmFamily::Rsa => ("RSA", DecodingKey::from_rsa_pem(&pem)),
        AlgorithmFamily::Ec => ("EC", DecodingKey::from_ec_pem(&pem)),
        _ => ("Ed25519", DecodingKey::from_ed_pem(&pem)),
    };
    parsed.map_err(|e| bad(format!("{} is not a PEM {kind} public key ({e}); use a `-----BEGIN PUBLIC KEY-----` file, e.g. from `openssl pkey -in private.pem -pubout`", path.display())))
}

/// Makes sure `key` can verify every algorithm, so a mismatch is a start-up mistake.
fn probe(
    key: &DecodingKey,
    algorithms: &[Algorithm],
    raw: &RawJwt,
    at: usize,
    field: &str,
) -> Result<(), Mistake> {
    let (offset, field) = match &raw.public_key_file {
        Some(file) => (file.span().start, format!("{field}.public_key_file")),
        None => (at, format!("{field}.secret")),
    };
    let bytes = key.try_get_as_bytes().unwrap_or_default();
    let usable = match key.family() {
        // jsonwebtoken slices the first 32 bytes without checking; an Ed25519 key is 32.
        AlgorithmFamily::Ed => bytes.len() == 32,
        // The RSA verifier parses the key per request; parse it once here.
        AlgorithmFamily::Rsa => CryptoProvider::try_get_default()
            .is_some_and(|p| (p.key_utils.rsa_pub_components_from_public_key)(bytes).is_ok()),
        _ => true,
    };
    if !usable {
        return Err((offset, field, "the key in the file is not a valid public key for the configured algorithm; regenerate it with `openssl pkey -in private.pem -pubout`".into()));
    }
    for alg in algorithms {
        if let Err(e) = jsonwebtoken::crypto::verify("AAAA", b"probe", key, *alg) {
            return Err((offset, field, format!("the key cannot verify {alg:?} tokens ({e}); for ES256 use a P-256 key, for ES384 a P-384 key")));
        }
    }
    Ok(())
}

/// `audience`/`issuer`: a non-empty string or a non-empty list of them.
fn names(
    value: Option<&Spanned<toml::Value>>,
    field: &str,
) -> Result<Option<Vec<String>>, Mistake> {
    let Some(value) = value else {
        return Ok(None);
    };
    let bad = || {
        mistake(value.span().start, field, "must be a non-empty string or a non-empty list of them, e.g. \"https://api.example.com\"")
    };
    let list = match value.get_ref() {
        toml::Value::String(one) => vec![one.clone()],
        toml::Value::Array(many) if !many.is_empty() => many
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    if list.iter().any(String::is_empty) {
        return Err(bad());
    }
    Ok(Some(list))
}

/// `required_claims`: non-empty names.
fn required_claims(raw: &RawJwt, field: &str) -> Result<Vec<String>, Mistake> {
    let Some(list) = &raw.required_claims else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(list.get_ref().len());
    for name in list.get_ref() {
        if name.get_ref().is_empty() {
            return Err(mistake(
                name.span().start,
                &format!("{field}.required_claims"),
                "holds an empty name; list claim names, e.g. [\"role\"]",
            ));
        }
        if !out.contains(name.get_ref()) {
            out.push(name.get_ref().clone());
        }
    }
    Ok(out)
}
