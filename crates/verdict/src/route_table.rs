//! A default setting plus overrides for single routes, keyed by method and
//! matched path (`/records/{id}`), for the layers whose answer differs by route
//! (representations, accepted media types, body limits).

use http::Method;

#[derive(Clone, Debug)]
pub(crate) struct RouteTable<T> {
    default: T,
    routes: Vec<(Method, String, T)>,
}

impl<T> RouteTable<T> {
    pub(crate) fn new(default: T) -> Self {
        RouteTable {
            default,
            routes: Vec::new(),
        }
    }

    pub(crate) fn insert(&mut self, method: Method, path: &str, value: T) {
        self.routes.retain(|(m, p, _)| !(m == method && p == path));
        self.routes.push((method, path.to_string(), value));
    }

    /// The setting for `method` on `path`; HEAD falls back to GET's.
    pub(crate) fn get(&self, method: &Method, path: Option<&str>) -> &T {
        let Some(path) = path else {
            return &self.default;
        };
        let find = |m: &Method| {
            self.routes
                .iter()
                .find(|(rm, rp, _)| rm == m && rp == path)
                .map(|(_, _, v)| v)
        };
        find(method)
            .or_else(|| {
                (method == Method::HEAD)
                    .then(|| find(&Method::GET))
                    .flatten()
            })
            .unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_by_method_and_path_with_head_as_get() {
        let mut t = RouteTable::new(1);
        t.insert(Method::GET, "/a", 2);
        t.insert(Method::GET, "/a", 3);
        assert_eq!(*t.get(&Method::GET, Some("/a")), 3);
        assert_eq!(*t.get(&Method::HEAD, Some("/a")), 3);
        assert_eq!(*t.get(&Method::POST, Some("/a")), 1);
        assert_eq!(*t.get(&Method::GET, None), 1);
    }
}
