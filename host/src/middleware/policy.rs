//! Which policies a route gets: `[server.<policy>]` for every route, `[[policies]]` entries
//! selected by path pattern and method (plugin routes included), and the route's own keys,
//! in increasing precedence. Each policy kind is resolved on its own; `false` turns it off.

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A policy key as written: `false` (off here, whatever a wider level says) or its table.
#[derive(Debug, Clone)]
pub enum Toggle<T> {
    /// `key = false`.
    Off,
    /// `[...key]` or `key = { ... }`.
    On(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ToggleVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ToggleVisitor<T> {
            type Value = Toggle<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`false` (off) or a table of settings")
            }
            fn visit_bool<E: de::Error>(self, on: bool) -> Result<Self::Value, E> {
                if on {
                    Err(E::custom(
                        "`true` is not a setting; write the policy's table (or `false` to turn it off)",
                    ))
                } else {
                    Ok(Toggle::Off)
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Toggle::On)
            }
        }
        deserializer.deserialize_any(ToggleVisitor(PhantomData))
    }
}

/// One policy kind at one level: not written (`None`), `false` (`Some(None)`), or on.
pub type Setting<T> = Option<Option<std::sync::Arc<T>>>;

/// Resolves one level's raw key once: the table becomes one shared value, so every route it
/// applies to shares it (one rate-limit budget for a server-wide limit, not one per route).
pub fn resolve_setting<R, T>(
    raw: Option<&Toggle<R>>,
    resolve: impl FnOnce(&R) -> Result<T, super::Mistake>,
) -> Result<Setting<T>, super::Mistake> {
    Ok(match raw {
        None => None,
        Some(Toggle::Off) => Some(None),
        Some(Toggle::On(table)) => Some(Some(std::sync::Arc::new(resolve(table)?))),
    })
}

/// Which routes a `[[policies]]` entry applies to: a path pattern over route templates and
/// a method list; a missing part matches everything.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    path: Option<Vec<String>>,
    methods: Option<Vec<http::Method>>,
}

impl Selector {
    /// Checks a pattern (`/admin/**`, `/items/*`, `/users/{id}`) and a method list.
    ///
    /// In a pattern, `*` is one path segment, `**` any number of them (none included), and a
    /// `{name}` segment matches a route's parameter segment whatever its name; other segments
    /// match themselves.
    pub fn new(path: Option<&str>, methods: Option<&[String]>) -> Result<Selector, String> {
        let path = match path {
            None => None,
            Some(p) if !p.starts_with('/') => {
                return Err(format!(
                    "`{p}` must start with '/', e.g. \"/admin/**\" (`*` is one segment, `**` any number)"
                ))
            }
            Some(p) => Some(p.split('/').skip(1).map(str::to_owned).collect()),
        };
        let methods =
            match methods {
                None => None,
                Some([]) => return Err(
                    "is empty; list methods, e.g. [\"POST\", \"DELETE\"], or leave it out for all"
                        .into(),
                ),
                Some(list) => Some(
                    list.iter()
                        .map(|m| {
                            http::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                                .map_err(|_| format!("`{m}` is not an HTTP method"))
                        })
                        .collect::<Result<_, _>>()?,
                ),
            };
        Ok(Selector { path, methods })
    }

    /// Whether a route (`GET /items/{id}`) is selected. `HEAD` follows `GET`.
    pub fn matches(&self, method: &http::Method, template: &str) -> bool {
        let method_ok = self.methods.as_ref().is_none_or(|ms| ms.contains(method));
        let path_ok = self.path.as_ref().is_none_or(|pattern| {
            let segments: Vec<&str> = template.split('/').skip(1).collect();
            glob(pattern, &segments)
        });
        method_ok && path_ok
    }
}

fn is_param(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// Segment-wise match; `**` backtracks over any number of segments.
fn glob(pattern: &[String], segments: &[&str]) -> bool {
    match pattern.split_first() {
        None => segments.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=segments.len()).any(|skip| glob(rest, &segments[skip..]))
        }
        Some((first, rest)) => match segments.split_first() {
            None => false,
            Some((segment, others)) => {
                let one = first == "*"
                    || first == segment
                    || (is_param(first) && is_param(segment) && !segment.starts_with("{*"));
                one && glob(rest, others)
            }
        },
    }
}

/// The value a route gets for one policy kind: its own key, else the last `[[policies]]`
/// entry that selects it and sets the key, else the server-wide one.
pub fn pick<T>(
    own: &Setting<T>,
    entries: &[(Selector, Setting<T>)],
    server: &Setting<T>,
    method: &http::Method,
    template: &str,
) -> Option<std::sync::Arc<T>> {
    if let Some(own) = own {
        return own.clone();
    }
    entries
        .iter()
        .rev()
        .find_map(|(selector, setting)| {
            setting
                .as_ref()
                .filter(|_| selector.matches(method, template))
        })
        .or(server.as_ref())
        .cloned()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn sel(path: &str) -> Selector {
        Selector::new(Some(path), None).unwrap()
    }

    #[test]
    fn globs_over_templates() {
        let get = http::Method::GET;
        assert!(sel("/admin/**").matches(&get, "/admin"));
        assert!(sel("/admin/**").matches(&get, "/admin/users/{id}"));
        assert!(!sel("/admin/**").matches(&get, "/administrator"));
        assert!(sel("/items/*").matches(&get, "/items/{id}"));
        assert!(!sel("/items/*").matches(&get, "/items/{id}/tags"));
        assert!(sel("/users/{x}").matches(&get, "/users/{id}"));
        assert!(!sel("/users/{x}").matches(&get, "/users/me"));
        assert!(sel("/**").matches(&get, "/"));
        assert!(sel("/**/health").matches(&get, "/a/b/health"));
        assert!(!sel("/a").matches(&get, "/a/b"));
        assert!(Selector::new(Some("admin"), None).is_err());
        assert!(Selector::new(None, Some(&[])).is_err());
        assert!(Selector::new(None, Some(&["G T".into()])).is_err());
    }

    #[test]
    fn methods_select() {
        let s = Selector::new(None, Some(&["post".into()])).unwrap();
        assert!(s.matches(&http::Method::POST, "/x"));
        assert!(!s.matches(&http::Method::GET, "/x"));
    }

    #[test]
    fn precedence_route_then_last_policy_then_server() {
        let server: Setting<u8> = Some(Some(Arc::new(1)));
        let entries = vec![
            (sel("/a/**"), Some(Some(Arc::new(2)))),
            (sel("/a/b"), Some(None)),
            (sel("/c"), None),
        ];
        let get = http::Method::GET;
        let at =
            |own: &Setting<u8>, path: &str| pick(own, &entries, &server, &get, path).map(|v| *v);
        assert_eq!(at(&None, "/x"), Some(1));
        assert_eq!(at(&None, "/a/z"), Some(2));
        assert_eq!(at(&None, "/a/b"), None, "a later `false` wins");
        assert_eq!(
            at(&None, "/c"),
            Some(1),
            "an entry without the key leaves it alone"
        );
        assert_eq!(at(&Some(Some(Arc::new(9))), "/a/b"), Some(9));
        assert_eq!(at(&Some(None), "/x"), None);
    }

    #[test]
    fn toggle_reads_false_or_a_table() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct T {
            n: toml::Spanned<u32>,
        }
        #[derive(serde::Deserialize)]
        struct Doc {
            a: Toggle<T>,
            b: Toggle<T>,
        }
        let doc: Doc = toml::from_str("a = false\n[b]\nn = 3\n").unwrap();
        assert!(matches!(doc.a, Toggle::Off));
        match doc.b {
            Toggle::On(t) => assert_eq!((*t.n.get_ref(), t.n.span().start), (3, 18)),
            Toggle::Off => panic!("expected a table"),
        }
        let err = toml::from_str::<Doc>("a = true\nb = false\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("turn it off"), "{err}");
        let err = toml::from_str::<Doc>("a = false\n[b]\nm = 3\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert_eq!(err.span().map(|s| s.start), Some(14));
    }
}
