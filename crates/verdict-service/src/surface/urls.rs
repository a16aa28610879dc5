//! The URL of every resource, built in one place (for `Location`, `Link`,
//! and the links inside representations), matching the paths of the
//! operations table.

/// `/v1/collections/{c}`.
pub fn collection(name: &str) -> String {
    format!("/v1/collections/{name}")
}

/// `/v1/collections/{c}/records`.
pub fn records(collection: &str) -> String {
    format!("/v1/collections/{collection}/records")
}

/// `/v1/collections/{c}/records/{id}`.
pub fn record(collection: &str, id: &str) -> String {
    format!("/v1/collections/{collection}/records/{id}")
}

/// `/v1/jobs/{id}`: a job's monitor.
pub fn job(id: &str) -> String {
    format!("/v1/jobs/{id}")
}

/// `/v1/jobs/{id}/result`.
pub fn job_result(id: &str) -> String {
    format!("/v1/jobs/{id}/result")
}

/// `/v1/tokens/{id}`.
pub fn token(id: &str) -> String {
    format!("/v1/tokens/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::surface::OPERATIONS;

    /// Each builder makes a path of an operation of the table.
    #[test]
    fn every_url_is_a_path_of_the_table() {
        let built = [
            (collection("c"), "/v1/collections/{c}"),
            (records("c"), "/v1/collections/{c}/records"),
            (record("c", "r"), "/v1/collections/{c}/records/{id}"),
            (job("j"), "/v1/jobs/{id}"),
            (job_result("j"), "/v1/jobs/{id}/result"),
            (token("t"), "/v1/tokens/{id}"),
        ];
        for (url, template) in built {
            assert!(OPERATIONS.iter().any(|o| o.path == template), "{template}");
            let filled = template.replace("{c}", "c").replace(
                "{id}",
                if template.starts_with("/v1/jobs") {
                    "j"
                } else if template.starts_with("/v1/tokens") {
                    "t"
                } else {
                    "r"
                },
            );
            assert_eq!(url, filled);
        }
    }
}
