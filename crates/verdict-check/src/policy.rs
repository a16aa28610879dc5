//! What the audited API promises: which codes it may send, in which format
//! its errors come, and which status it gives a situation (seed-001 answers
//! a missing token with 400 and a rate limit with 420, seed-003 a retired
//! version with 426, seed-004 only its listed codes).
//!
//! A policy is one of the library's presets (`standard`, `seed-000` ...
//! `seed-004`: the same catalog `verdict serve` keeps, not a copy), plain
//! `rfc9110` (any code, any error format, the RFCs' own statuses), or a JSON
//! file that starts from one of those:
//!
//! ```json
//! {"extends": "rfc9110", "format": "problem", "allowed": [200, 201, 204, 400, 401, 403, 404, 405, 500],
//!  "map": {"missing_credentials": 401, "rate_limited": 429, "malformed_body": 400}}
//! ```

use std::collections::BTreeSet;

use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use verdict::format::ErrorFormat;
use verdict::{Preset, Situation};

/// The audited API's promises.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Its name, as reports show it.
    pub name: String,
    /// The codes it may send; `None`: any.
    allowed: Option<BTreeSet<u16>>,
    /// Its error format; `None`: any JSON error body is accepted.
    format: Option<ErrorFormat>,
    /// The preset whose mapping applies, if any.
    preset: Option<Preset>,
    /// Statuses given per situation, overriding the preset's.
    missing_credentials: Option<u16>,
    rate_limited: Option<u16>,
    malformed_body: Option<u16>,
    /// Whether an `Accept` it cannot meet may get the default representation
    /// (RFC 9110 §12.5.1 lets a server ignore `Accept`) instead of 406.
    pub accept_fallback: bool,
}

/// A policy file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    extends: Option<String>,
    format: Option<String>,
    allowed: Option<Vec<u16>>,
    #[serde(default)]
    map: SituationMap,
    accept_fallback: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SituationMap {
    missing_credentials: Option<u16>,
    rate_limited: Option<u16>,
    malformed_body: Option<u16>,
}

impl Policy {
    /// `rfc9110`: any code, any error format, the RFCs' statuses.
    pub fn rfc9110() -> Self {
        Policy {
            name: "rfc9110".into(),
            allowed: None,
            format: None,
            preset: None,
            missing_credentials: None,
            rate_limited: None,
            malformed_body: None,
            accept_fallback: true,
        }
    }

    /// The policy of one of the library's presets.
    pub fn preset(preset: Preset) -> Self {
        Policy {
            name: preset.name().to_string(),
            allowed: preset
                .allowed_codes()
                .map(|codes| codes.iter().copied().collect()),
            format: Some(preset.format()),
            preset: Some(preset),
            missing_credentials: None,
            rate_limited: None,
            malformed_body: None,
            accept_fallback: false,
        }
    }

    /// `rfc9110`, a preset's name, or a policy file's path.
    pub fn load(spec: &str) -> Result<Self, String> {
        if spec == "rfc9110" {
            return Ok(Self::rfc9110());
        }
        if let Ok(preset) = Preset::by_name(spec) {
            return Ok(Self::preset(preset));
        }
        let text = std::fs::read_to_string(spec).map_err(|e| {
            format!("`{spec}` is no policy (rfc9110, standard, seed-000 ... seed-004) and no readable file: {e}")
        })?;
        Self::from_json(spec, &text)
    }

    /// A policy file's contents (`name` for reports).
    pub fn from_json(name: &str, text: &str) -> Result<Self, String> {
        let file: PolicyFile =
            serde_json::from_str(text).map_err(|e| format!("policy file {name}: {e}"))?;
        let mut policy = match file.extends.as_deref() {
            None | Some("rfc9110") => Self::rfc9110(),
            Some(other) => Self::preset(
                Preset::by_name(other).map_err(|e| format!("policy file {name}: {e}"))?,
            ),
        };
        policy.name = name.to_string();
        if let Some(format) = file.format {
            policy.format = Some(
                format
                    .parse::<ErrorFormat>()
                    .map_err(|e| format!("policy file {name}: {e}"))?,
            );
        }
        if let Some(allowed) = file.allowed {
            policy.allowed = Some(allowed.into_iter().collect());
        }
        policy.missing_credentials = file.map.missing_credentials.or(policy.missing_credentials);
        policy.rate_limited = file.map.rate_limited.or(policy.rate_limited);
        policy.malformed_body = file.map.malformed_body.or(policy.malformed_body);
        if let Some(fallback) = file.accept_fallback {
            policy.accept_fallback = fallback;
        }
        Ok(policy)
    }

    /// Whether `status` may be sent at all.
    pub fn allows(&self, status: u16) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|set| set.contains(&status))
    }

    /// The status expected where the RFCs give `status` (mapped by the
    /// preset when it does not allow that code).
    pub fn expected(&self, status: u16) -> u16 {
        match &self.preset {
            Some(p) => p
                .map(StatusCode::from_u16(status).expect("a valid code"))
                .as_u16(),
            None => status,
        }
    }

    fn situation(&self, situation: Situation, own: Option<u16>, rfc: u16) -> u16 {
        if let Some(code) = own {
            return code;
        }
        match &self.preset {
            Some(p) => p.status_for(situation).as_u16(),
            None => rfc,
        }
    }

    /// The status for a request without credentials to a protected resource.
    pub fn missing_credentials(&self) -> u16 {
        self.situation(Situation::MissingCredentials, self.missing_credentials, 401)
    }

    /// The status past a rate limit.
    pub fn rate_limited(&self) -> u16 {
        self.situation(Situation::RateLimited, self.rate_limited, 429)
    }

    /// The status for a body that is not well-formed.
    pub fn malformed_body(&self) -> u16 {
        self.situation(Situation::MalformedBody, self.malformed_body, 400)
    }

    /// The error format expected for a request with these headers (`None`:
    /// any of the three). The same negotiation as the library's.
    pub fn error_format(&self, request: &HeaderMap) -> Option<ErrorFormat> {
        self.format.map(|f| ErrorFormat::negotiate(request, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_carry_their_mappings() {
        let p = Policy::load("seed-001").unwrap();
        assert_eq!(p.missing_credentials(), 400);
        assert_eq!(p.rate_limited(), 420);
        let rfc = Policy::load("rfc9110").unwrap();
        assert_eq!((rfc.missing_credentials(), rfc.rate_limited()), (401, 429));
        assert!(rfc.allows(418) && rfc.accept_fallback);
        let seed4 = Policy::load("seed-004").unwrap();
        assert!(!seed4.allows(418));
    }

    #[test]
    fn a_file_extends_a_policy() {
        let p = Policy::from_json(
            "team.json",
            r#"{"extends": "standard", "allowed": [200, 400, 404], "map": {"rate_limited": 503}}"#,
        )
        .unwrap();
        assert!(p.allows(404) && !p.allows(405));
        assert_eq!(p.rate_limited(), 503);
        assert!(Policy::from_json("bad.json", r#"{"allowd": []}"#).is_err());
    }
}
