//! What to audit: endpoints from an OpenAPI document (`--openapi`), or from
//! paths given on the command line or in a file (`--path`, `--paths`), each
//! with the methods it is known to take.

use std::collections::{BTreeMap, BTreeSet};

use http::Method;
use serde_json::Value;

/// One path to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The concrete path probed (parameters filled in).
    pub path: String,
    /// The path as documented (`/items/{id}`), for reports.
    pub template: String,
    /// The methods the document gives it; empty when unknown (then OPTIONS
    /// and `Allow` tell).
    pub methods: BTreeSet<String>,
    /// Whether the document says it needs credentials (`None`: unknown).
    pub protected: Option<bool>,
    /// The request media types the document gives each method (a method
    /// documented without a request body maps to an empty list; a method
    /// absent: unknown).
    pub consumes: BTreeMap<String, Vec<String>>,
    /// A JSON body the document gives as the POST's example, if any.
    pub example: Option<Value>,
}

impl Endpoint {
    /// A path given by hand, optionally after the methods it takes
    /// (`GET,POST /items`); without them they are learnt from the API.
    pub fn parse(spec: &str) -> Self {
        match spec.trim().split_once(' ') {
            Some((methods, path)) if !methods.starts_with('/') => {
                let mut e = Endpoint::path(path.trim());
                e.methods = allow_set(methods);
                if e.methods.contains("GET") {
                    e.methods.insert("HEAD".into());
                }
                e
            }
            _ => Endpoint::path(spec.trim()),
        }
    }

    /// A path given by hand: its methods are learnt from the API.
    pub fn path(path: &str) -> Self {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Endpoint {
            template: path.clone(),
            path,
            methods: BTreeSet::new(),
            protected: None,
            consumes: BTreeMap::new(),
            example: None,
        }
    }

    /// Whether the document says `method` is taken here.
    pub fn documents(&self, method: &Method) -> bool {
        self.methods.contains(method.as_str())
    }
}

/// The value a path parameter is filled with: an id no resource has, so a
/// probe never reaches real data by accident.
pub const PARAMETER: &str = "verdict-check-0";

/// The endpoints an OpenAPI 3 document lists.
pub fn from_openapi(doc: &Value) -> Result<Vec<Endpoint>, String> {
    let paths = doc["paths"]
        .as_object()
        .ok_or("the OpenAPI document has no `paths`")?;
    let global_security = doc["security"].as_array().is_some_and(|s| !s.is_empty());
    let mut out = Vec::new();
    for (template, item) in paths {
        let Some(ops) = item.as_object() else {
            continue;
        };
        let mut methods = BTreeSet::new();
        let mut protected = None;
        let mut consumes = BTreeMap::new();
        let mut example = None;
        for (method, op) in ops {
            let upper = method.to_ascii_uppercase();
            if ![
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
            ]
            .contains(&upper.as_str())
            {
                continue;
            }
            methods.insert(upper.clone());
            let media: Vec<String> = op["requestBody"]["content"]
                .as_object()
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default();
            consumes.insert(upper.clone(), media);
            if upper == "POST" {
                example = post_example(doc, op);
            }
            if upper == "GET" {
                let secured = match op["security"].as_array() {
                    Some(list) => {
                        !list.is_empty()
                            && !list
                                .iter()
                                .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
                    }
                    None => global_security,
                };
                protected = Some(secured);
            }
        }
        if methods.contains("GET") {
            methods.insert("HEAD".into());
        }
        out.push(Endpoint {
            path: fill(template),
            template: template.clone(),
            methods,
            protected,
            consumes,
            example,
        });
    }
    Ok(out)
}

/// The example of a POST's JSON body: the media type's `example`, else its
/// schema's (following one `$ref` into the components).
fn post_example(doc: &Value, op: &Value) -> Option<Value> {
    let media = &op["requestBody"]["content"]["application/json"];
    if let Some(e) = media.get("example") {
        return Some(e.clone());
    }
    let mut schema = &media["schema"];
    if let Some(r) = schema["$ref"].as_str() {
        let pointer = r.strip_prefix('#')?;
        schema = doc.pointer(pointer)?;
    }
    schema.get("example").cloned()
}

/// The URI references of a `Link` value (`<...>; rel="next", <...>; ...`).
pub fn link_targets(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start + 1..].find('>') else {
            break;
        };
        out.push(rest[start + 1..start + 1 + len].to_string());
        rest = &rest[start + 1 + len + 1..];
    }
    out
}

/// `template` with each `{parameter}` replaced by [`PARAMETER`].
fn fill(template: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in template.chars() {
        match c {
            '{' => inside = true,
            '}' if inside => {
                inside = false;
                out.push_str(PARAMETER);
            }
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

/// Paths from a file, one a line (`#` comments and blank lines skipped).
pub fn from_lines(text: &str) -> Vec<Endpoint> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Endpoint::parse)
        .collect()
}

/// The methods an `Allow` value names.
pub fn allow_set(value: &str) -> BTreeSet<String> {
    value
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_gives_paths_methods_and_protection() {
        let doc = serde_json::json!({
            "security": [{"bearer": []}],
            "paths": {
                "/items/{id}": {"get": {}, "delete": {}},
                "/health": {"get": {"security": []}},
            }
        });
        let eps = from_openapi(&doc).unwrap();
        let item = eps.iter().find(|e| e.template == "/items/{id}").unwrap();
        assert_eq!(item.path, "/items/verdict-check-0");
        assert!(item.documents(&Method::HEAD) && item.documents(&Method::DELETE));
        assert_eq!(item.protected, Some(true));
        let health = eps.iter().find(|e| e.template == "/health").unwrap();
        assert_eq!(health.protected, Some(false));
    }

    #[test]
    fn a_path_may_name_its_methods() {
        let e = Endpoint::parse("GET,post /items");
        assert_eq!(e.path, "/items");
        assert!(e.documents(&Method::POST) && e.documents(&Method::HEAD));
        assert!(Endpoint::parse("/items").methods.is_empty());
    }

    #[test]
    fn links_name_their_targets() {
        assert_eq!(
            link_targets(r#"</items?cursor=b>; rel="next", <https://x.example/a>; rel="other""#),
            vec![
                "/items?cursor=b".to_string(),
                "https://x.example/a".to_string()
            ]
        );
    }

    #[test]
    fn allow_values_are_sets() {
        assert_eq!(
            allow_set("GET, head ,OPTIONS"),
            ["GET", "HEAD", "OPTIONS"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
    }
}
