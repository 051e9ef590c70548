//! `components.securitySchemes` and each operation's `security`, from the authentication
//! policy the host applies to the route (`[server.auth]`, `[[policies]]`, the route's
//! `auth`): so the docs page offers "Authorize" and sends the credential with "Try it out".

use serde_json::{json, Map, Value};

use crate::middleware::auth::Credentials;

/// The schemes of one document, named as FastAPI names them (`HTTPBearer`, `APIKeyHeader`,
/// `APIKeyQuery`), with a suffix when routes use different header or parameter names.
#[derive(Default)]
pub struct Schemes {
    schemes: Map<String, Value>,
}

impl Schemes {
    /// The operation's `security`: any one of the policy's ways to present a credential.
    pub fn requirement(&mut self, credentials: Credentials<'_>) -> Value {
        let mut alternatives = Vec::new();
        if credentials.bearer {
            let scheme = json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"});
            alternatives.push(self.name("HTTPBearer", scheme));
        }
        if let Some(header) = credentials.api_key_header {
            let scheme = json!({"type": "apiKey", "in": "header", "name": header.as_str()});
            alternatives.push(self.name("APIKeyHeader", scheme));
        }
        if let Some(query) = credentials.api_key_query {
            let scheme = json!({"type": "apiKey", "in": "query", "name": query});
            alternatives.push(self.name("APIKeyQuery", scheme));
        }
        alternatives
            .into_iter()
            .map(|name| json!({ name: [] }))
            .collect()
    }

    /// The name of `scheme`: the existing one when declared before, else `base`, `base_2`…
    fn name(&mut self, base: &str, scheme: Value) -> String {
        if let Some((name, _)) = self.schemes.iter().find(|(_, s)| **s == scheme) {
            return name.clone();
        }
        let mut name = base.to_owned();
        let mut n = 2;
        while self.schemes.contains_key(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.schemes.insert(name.clone(), scheme);
        name
    }

    /// The `components.securitySchemes` object (empty when no route has a policy).
    pub fn into_map(self) -> Map<String, Value> {
        self.schemes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_declared_once_and_suffixed_when_they_differ() {
        let (x, y) = (
            http::HeaderName::from_static("x-api-key"),
            http::HeaderName::from_static("x-key"),
        );
        let mut s = Schemes::default();
        let both = Credentials {
            bearer: true,
            api_key_header: Some(&x),
            api_key_query: Some("api_key"),
        };
        assert_eq!(
            s.requirement(both),
            json!([{"HTTPBearer": []}, {"APIKeyHeader": []}, {"APIKeyQuery": []}])
        );
        let other = Credentials {
            bearer: false,
            api_key_header: Some(&y),
            api_key_query: None,
        };
        assert_eq!(s.requirement(other), json!([{"APIKeyHeader_2": []}]));
        assert_eq!(s.requirement(both)[1], json!({"APIKeyHeader": []}));
        let map = s.into_map();
        assert_eq!(map["APIKeyHeader_2"]["name"], "x-key");
        assert_eq!(map["HTTPBearer"]["scheme"], "bearer");
    }
}
