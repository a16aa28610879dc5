//! `--openapi FILE`: the upstream's own description, so the gateway answers
//! 404 for a path it does not have, 405 with the exact `Allow` for a method a
//! path does not take, and 406/415 against the media types of each
//! operation, before the upstream sees the request.

use std::collections::BTreeMap;
use std::path::Path;

use axum::handler::Handler;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use http::Method;
use serde_json::Value;
use verdict::Contract;

/// The methods an OpenAPI path item may name.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation: its path template, method, and media types.
#[derive(Clone, Debug)]
struct Operation {
    path: String,
    method: Method,
    /// What its 2xx responses may be (empty: not stated, not checked).
    produces: Vec<&'static str>,
    /// What its request body may be (empty: not stated, not checked).
    consumes: Vec<&'static str>,
}

/// The operations of a document.
#[derive(Clone, Debug)]
pub struct Document {
    operations: Vec<Operation>,
}

impl Document {
    /// Reads an OpenAPI 3 document (JSON).
    pub fn read(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("--openapi {}: {e}", file.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| format!("--openapi {}: not JSON: {e}", file.display()))?;
        Self::from_value(&doc).map_err(|e| format!("--openapi {}: {e}", file.display()))
    }

    /// The operations of `doc`.
    pub fn from_value(doc: &Value) -> Result<Self, String> {
        let paths = doc["paths"].as_object().ok_or("no `paths`")?;
        let mut operations = Vec::new();
        for (path, item) in paths {
            if !path.starts_with('/') {
                return Err(format!("the path `{path}` does not start with /"));
            }
            for name in METHODS {
                let Some(op) = item.get(name) else { continue };
                let method = Method::from_bytes(name.to_ascii_uppercase().as_bytes())
                    .expect("a known method");
                let mut produces = Vec::new();
                for (status, response) in op["responses"].as_object().into_iter().flatten() {
                    if status.starts_with('2') {
                        for media in response["content"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .map(|(k, _)| k)
                        {
                            produces.push(leak(media));
                        }
                    }
                }
                let consumes = op["requestBody"]["content"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| leak(k))
                    .collect();
                produces.sort_unstable();
                produces.dedup();
                operations.push(Operation {
                    path: path.clone(),
                    method,
                    produces,
                    consumes,
                });
            }
        }
        if operations.is_empty() {
            return Err("no operation in `paths`".into());
        }
        Ok(Document { operations })
    }

    /// A route for each documented path, on its documented methods, to `handler`.
    pub fn routes<H, T, S>(&self, handler: H) -> Router<S>
    where
        H: Handler<T, S>,
        T: 'static,
        S: Clone + Send + Sync + 'static,
    {
        let mut by_path: BTreeMap<&str, MethodRouter<S>> = BTreeMap::new();
        for op in &self.operations {
            let filter = MethodFilter::try_from(op.method.clone()).expect("a routable method");
            let route = on(filter, handler.clone());
            let merged = match by_path.remove(op.path.as_str()) {
                Some(existing) => existing.merge(route),
                None => route,
            };
            by_path.insert(op.path.as_str(), merged);
        }
        by_path
            .into_iter()
            .fold(Router::new(), |router, (path, methods)| {
                router.route(path, methods)
            })
    }

    /// `contract` told what each operation produces and consumes.
    pub fn media_types(&self, mut contract: Contract) -> Contract {
        for op in &self.operations {
            if !op.produces.is_empty() {
                contract =
                    contract.produces(op.method.clone(), &op.path, op.produces.iter().copied());
            }
            if !op.consumes.is_empty() {
                contract =
                    contract.consumes(op.method.clone(), &op.path, op.consumes.iter().copied());
            }
        }
        contract
    }
}

/// A media type from the document, kept for the process's life (the
/// contract's tables take `&'static str`; a document is read once, at start).
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_gives_operations_with_their_media_types() {
        let doc = serde_json::json!({"paths": {"/things/{id}": {
            "get": {"responses": {"200": {"content": {"application/json": {}}}, "404": {}}},
            "put": {"requestBody": {"content": {"application/json": {}}}},
        }}});
        let d = Document::from_value(&doc).unwrap();
        assert_eq!(d.operations.len(), 2);
        assert_eq!(d.operations[0].produces, vec!["application/json"]);
        assert!(Document::from_value(&serde_json::json!({"paths": {}})).is_err());
    }
}
