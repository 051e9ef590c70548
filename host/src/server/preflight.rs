//! CORS preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) are the
//! host's to answer: the route the preflight asks about decides with its CORS policy, so a
//! plugin never sees them and a route without a policy is not opened by its neighbour's.

use std::sync::Arc;

use http::Method;

use crate::middleware::cors::Cors;
use crate::routes::Route;

/// The CORS policies of one path's routes.
pub struct Preflight {
    /// The methods routes declare at the path (`HEAD` with `GET`): the allowed methods of a
    /// policy that lists none.
    methods: Vec<Method>,
    /// Each route's method and policy, for the routes that have one.
    policies: Vec<(Method, Arc<Cors>)>,
}

impl Preflight {
    /// `None` when no route at the path has a CORS policy (preflights then get the usual
    /// 405 or the route's own OPTIONS handler).
    pub fn for_group(group: &[Arc<Route>]) -> Option<Arc<Preflight>> {
        let policies: Vec<(Method, Arc<Cors>)> = group
            .iter()
            .filter_map(|r| Some((r.method.clone(), r.policies.cors.clone()?)))
            .collect();
        if policies.is_empty() {
            return None;
        }
        let mut methods: Vec<Method> = group.iter().map(|r| r.method.clone()).collect();
        if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
            methods.push(Method::HEAD);
        }
        Some(Arc::new(Preflight { methods, policies }))
    }

    /// The policy that judges a preflight: the one of the route for the requested method;
    /// for a method no route has, the first policy at the path (which then refuses it
    /// unless it allows that method explicitly).
    pub fn policy(&self, headers: &http::HeaderMap) -> &Cors {
        let requested = headers
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        let requested = requested.map(|m| if m == Method::HEAD { Method::GET } else { m });
        self.policies
            .iter()
            .find(|(method, _)| Some(method) == requested.as_ref())
            .unwrap_or(&self.policies[0])
            .1
            .as_ref()
    }

    /// The methods at the path.
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }
}
