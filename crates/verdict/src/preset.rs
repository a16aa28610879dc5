//! Presets: the seeds' variants of the contract, as named sets of choices.
//!
//! A [`Preset`] fixes the error-body format, the status of four situations
//! whose status differs between the seeds ([`Situation`]), and the set of codes
//! the service may send at all. A code outside the set is mapped to the nearest
//! allowed one by the preset's table ([`Preset::map`]), applied by the
//! normalizing layer to every response that leaves the stack.
//!
//! "Nearest" is the allowed code whose seed description covers the case, else
//! the generic code of the class (200, 400, 500). The tables below are the only
//! place the mapping lives; `docs/presets.md` is generated from them
//! ([`mapping_markdown`]) and a test keeps the two equal.
//!
//! ```
//! use http::StatusCode;
//! use verdict::{Preset, Situation, ErrorFormat};
//!
//! let seed1 = Preset::by_name("seed-001").unwrap();
//! assert_eq!(seed1.format(), ErrorFormat::Simple);
//! assert_eq!(seed1.status_for(Situation::RateLimited), StatusCode::from_u16(420).unwrap());
//!
//! // seed-004 has no 501: an unknown method is answered as not allowed.
//! let seed4 = Preset::by_name("seed-004").unwrap();
//! assert_eq!(seed4.map(StatusCode::NOT_IMPLEMENTED), StatusCode::METHOD_NOT_ALLOWED);
//!
//! // Each choice can also be set on its own.
//! let custom = Preset::standard().with_format(ErrorFormat::JsonApi);
//! assert_eq!(custom.format(), ErrorFormat::JsonApi);
//! ```

use std::fmt;

use http::StatusCode;

use crate::error::Situation;
use crate::format::ErrorFormat;
use crate::status::CATALOG;

/// A named set of choices (docs/contract.md, "Presets").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preset {
    name: &'static str,
    format: ErrorFormat,
    malformed_body: u16,
    missing_credentials: u16,
    rate_limited: u16,
    retired_version: u16,
    allowed: Option<&'static [u16]>,
    mapping: &'static [(u16, u16)],
}

/// Each preset: its codes, and where every other catalog code goes.
/// (`from -> to` rows; `standard` allows everything and maps nothing.)
mod tables {
    pub(super) const SEED_000_ALLOWED: &[u16] =
        &[200, 304, 400, 401, 403, 404, 422, 429, 500, 503, 504];
    pub(super) const SEED_000_MAP: &[(u16, u16)] = &[
        (201, 200),
        (202, 200),
        (204, 200),
        (207, 200),
        (300, 200),
        (302, 200),
        (303, 200),
        (405, 400),
        (406, 400),
        (408, 400),
        (409, 422),
        (410, 404),
        (412, 400),
        (413, 400),
        (414, 400),
        (415, 400),
        (420, 429),
        (426, 404),
        (428, 400),
        (431, 400),
        (501, 400),
        (502, 500),
    ];

    pub(super) const SEED_001_ALLOWED: &[u16] = &[
        200, 201, 202, 304, 400, 401, 403, 404, 405, 406, 410, 420, 422, 429, 500, 501, 502, 503,
        504,
    ];
    pub(super) const SEED_001_MAP: &[(u16, u16)] = &[
        (204, 200),
        (207, 200),
        (300, 200),
        (302, 200),
        (303, 200),
        (408, 400),
        (409, 422),
        (412, 400),
        (413, 400),
        (414, 400),
        (415, 400),
        (426, 410),
        (428, 400),
        (431, 400),
    ];

    pub(super) const SEED_002_ALLOWED: &[u16] = &[
        200, 201, 204, 300, 302, 304, 400, 401, 403, 404, 406, 500, 501, 503,
    ];
    pub(super) const SEED_002_MAP: &[(u16, u16)] = &[
        (202, 200),
        (207, 200),
        (303, 302),
        (405, 501),
        (408, 400),
        (409, 400),
        (410, 404),
        (412, 400),
        (413, 400),
        (414, 400),
        (415, 400),
        (420, 503),
        (422, 400),
        (426, 404),
        (428, 400),
        (429, 503),
        (431, 400),
        (502, 500),
        (504, 500),
    ];

    pub(super) const SEED_003_ALLOWED: &[u16] = &[
        200, 201, 202, 204, 400, 401, 403, 404, 405, 406, 426, 429, 500, 503,
    ];
    pub(super) const SEED_003_MAP: &[(u16, u16)] = &[
        (207, 200),
        (300, 200),
        (302, 200),
        (303, 200),
        (304, 200),
        (408, 400),
        (409, 400),
        (410, 404),
        (412, 400),
        (413, 400),
        (414, 400),
        (415, 400),
        (420, 429),
        (422, 400),
        (428, 400),
        (431, 400),
        (501, 405),
        (502, 500),
        (504, 500),
    ];

    pub(super) const SEED_004_ALLOWED: &[u16] = &[
        200, 201, 202, 204, 207, 303, 304, 400, 401, 403, 404, 405, 406, 409, 410, 412, 415, 422,
        429, 500, 502, 503, 504,
    ];
    pub(super) const SEED_004_MAP: &[(u16, u16)] = &[
        (300, 200),
        (302, 303),
        (408, 400),
        (413, 400),
        (414, 400),
        (420, 429),
        (426, 410),
        (428, 412),
        (431, 400),
        (501, 405),
    ];
}

/// The names of every preset, `standard` first.
pub const PRESET_NAMES: [&str; 6] = [
    "standard", "seed-000", "seed-001", "seed-002", "seed-003", "seed-004",
];

/// The name is not one of [`PRESET_NAMES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPreset(pub String);

impl fmt::Display for UnknownPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown preset `{}` (expected one of {})",
            self.0,
            PRESET_NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownPreset {}

impl Default for Preset {
    fn default() -> Self {
        Preset::standard()
    }
}

/// What the normalizing layer tells the layers and handlers inside it about
/// a request: the preset it answers under and the realm of its bearer
/// challenges. One entry in the request's extensions for both, since each
/// entry is a box and a slot (and past seven, a larger table) per request;
/// read it with [`Preset::of`] and `auth::Realm::of`.
#[derive(Clone, Debug)]
pub struct InEffect {
    pub(crate) preset: Preset,
    pub(crate) realm: std::sync::Arc<str>,
}

impl Preset {
    /// The preset a request is answered under, from its extensions: as the
    /// normalizing layer put it there ([`InEffect`]), or a `Preset` an
    /// application inserted itself.
    pub fn of(extensions: &http::Extensions) -> Option<&Preset> {
        extensions
            .get::<InEffect>()
            .map(|e| &e.preset)
            .or_else(|| extensions.get::<Preset>())
    }

    /// RFC 9110's answers, problem details, every code allowed.
    pub const fn standard() -> Self {
        Preset {
            name: "standard",
            format: ErrorFormat::Problem,
            malformed_body: 400,
            missing_credentials: 401,
            rate_limited: 429,
            retired_version: 410,
            allowed: None,
            mapping: &[],
        }
    }

    /// The preset named `name` (`standard`, `seed-000` ... `seed-004`).
    pub fn by_name(name: &str) -> Result<Self, UnknownPreset> {
        use tables::*;
        let base = Preset::standard();
        let p = match name {
            "standard" => base,
            "seed-000" => Preset {
                name: "seed-000",
                format: ErrorFormat::JsonApi,
                malformed_body: 422,
                allowed: Some(SEED_000_ALLOWED),
                mapping: SEED_000_MAP,
                ..base
            },
            "seed-001" => Preset {
                name: "seed-001",
                format: ErrorFormat::Simple,
                malformed_body: 422,
                missing_credentials: 400,
                rate_limited: 420,
                allowed: Some(SEED_001_ALLOWED),
                mapping: SEED_001_MAP,
                ..base
            },
            "seed-002" => Preset {
                name: "seed-002",
                allowed: Some(SEED_002_ALLOWED),
                mapping: SEED_002_MAP,
                ..base
            },
            "seed-003" => Preset {
                name: "seed-003",
                retired_version: 426,
                allowed: Some(SEED_003_ALLOWED),
                mapping: SEED_003_MAP,
                ..base
            },
            "seed-004" => Preset {
                name: "seed-004",
                allowed: Some(SEED_004_ALLOWED),
                mapping: SEED_004_MAP,
                ..base
            },
            other => return Err(UnknownPreset(other.to_string())),
        };
        Ok(p)
    }

    /// Every preset, `standard` first.
    pub fn all() -> Vec<Preset> {
        PRESET_NAMES
            .iter()
            .map(|n| Preset::by_name(n).expect("listed presets exist"))
            .collect()
    }

    /// The preset's name (`custom` once a choice was changed).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The default error-body format.
    pub fn format(&self) -> ErrorFormat {
        self.format
    }

    /// Sets the error-body format.
    pub fn with_format(mut self, format: ErrorFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the status of one situation (only the seeds' variants are accepted:
    /// 400/422 for a malformed body, 401/400 for missing credentials,
    /// 429/420 for a rate limit, 410/426 for a retired version).
    pub fn with_status_for(mut self, situation: Situation, status: StatusCode) -> Self {
        let code = status.as_u16();
        let (slot, options): (&mut u16, [u16; 2]) = match situation {
            Situation::MalformedBody => (&mut self.malformed_body, [400, 422]),
            Situation::MissingCredentials => (&mut self.missing_credentials, [401, 400]),
            Situation::RateLimited => (&mut self.rate_limited, [429, 420]),
            Situation::RetiredVersion => (&mut self.retired_version, [410, 426]),
        };
        assert!(
            options.contains(&code),
            "{situation:?} can be answered with {options:?}, not {code}"
        );
        *slot = code;
        self.name = "custom";
        self
    }

    /// Restricts the codes sent to this preset's set (`None`: every code).
    pub fn allowed_codes(&self) -> Option<&'static [u16]> {
        self.allowed
    }

    /// Whether `status` may be sent as it is.
    pub fn allows(&self, status: StatusCode) -> bool {
        self.allowed
            .is_none_or(|set| set.contains(&status.as_u16()))
    }

    /// The status the preset sends for `situation`, after mapping.
    pub fn status_for(&self, situation: Situation) -> StatusCode {
        let code = match situation {
            Situation::MalformedBody => self.malformed_body,
            Situation::MissingCredentials => self.missing_credentials,
            Situation::RateLimited => self.rate_limited,
            Situation::RetiredVersion => self.retired_version,
        };
        self.map(StatusCode::from_u16(code).expect("preset codes are valid"))
    }

    /// The status actually sent for `status`: itself if allowed, else the
    /// preset's nearest allowed code, else the generic code of its class.
    pub fn map(&self, status: StatusCode) -> StatusCode {
        if self.allows(status) {
            return status;
        }
        let code = status.as_u16();
        let to = self
            .mapping
            .iter()
            .find(|(from, _)| *from == code)
            .map(|(_, to)| *to)
            .unwrap_or(match code {
                100..=399 => 200,
                400..=499 => 400,
                _ => 500,
            });
        StatusCode::from_u16(to).expect("mapping targets are valid")
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The docs' table of every preset's choices and mapping, generated from the code.
pub fn mapping_markdown() -> String {
    let presets = Preset::all();
    let mut out = String::from("| code | ");
    out.push_str(&PRESET_NAMES.join(" | "));
    out.push_str(" |\n|---|");
    out.push_str(&"---|".repeat(PRESET_NAMES.len()));
    out.push('\n');
    let row = |label: &str, cells: Vec<String>| format!("| {label} | {} |\n", cells.join(" | "));
    out.push_str(&row(
        "error format",
        presets
            .iter()
            .map(|p| p.format().name().to_string())
            .collect(),
    ));
    for (label, situation) in [
        ("malformed body", Situation::MalformedBody),
        ("missing credentials", Situation::MissingCredentials),
        ("rate limited", Situation::RateLimited),
        ("retired version", Situation::RetiredVersion),
    ] {
        out.push_str(&row(
            label,
            presets
                .iter()
                .map(|p| p.status_for(situation).as_u16().to_string())
                .collect(),
        ));
    }
    for entry in CATALOG {
        let cells = presets
            .iter()
            .map(|p| {
                let to = p.map(entry.status()).as_u16();
                if to == entry.code {
                    "✓".to_string()
                } else {
                    format!("→ {to}")
                }
            })
            .collect();
        out.push_str(&row(&format!("{} {}", entry.code, entry.reason), cells));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_code_maps_into_the_allowed_set() {
        for p in Preset::all() {
            for e in CATALOG {
                let to = p.map(e.status());
                assert!(p.allows(to), "{}: {} -> {}", p, e.code, to);
            }
            for s in [
                Situation::MalformedBody,
                Situation::MissingCredentials,
                Situation::RateLimited,
                Situation::RetiredVersion,
            ] {
                assert!(p.allows(p.status_for(s)), "{p}: {s:?}");
            }
        }
    }

    #[test]
    fn mapping_tables_only_map_codes_that_are_not_allowed() {
        for p in Preset::all() {
            for (from, to) in p.mapping {
                assert!(!p.allowed.unwrap().contains(from), "{p}: {from}");
                assert!(p.allowed.unwrap().contains(to), "{p}: {to}");
            }
        }
    }

    #[test]
    fn seed_choices_are_as_the_contract_says() {
        let p = |n| Preset::by_name(n).unwrap();
        let s = |c| StatusCode::from_u16(c).unwrap();
        assert_eq!(p("standard").status_for(Situation::MalformedBody), s(400));
        assert_eq!(p("seed-000").status_for(Situation::MalformedBody), s(422));
        assert_eq!(
            p("seed-001").status_for(Situation::MissingCredentials),
            s(400)
        );
        assert_eq!(p("seed-001").status_for(Situation::RateLimited), s(420));
        assert_eq!(p("seed-003").status_for(Situation::RetiredVersion), s(426));
        assert_eq!(p("seed-004").map(s(413)), s(400));
        assert_eq!(p("seed-004").map(s(428)), s(412));
        assert_eq!(p("seed-002").map(s(405)), s(501));
        assert_eq!(p("seed-000").map(s(201)), s(200));
        assert!(Preset::by_name("seed-009").is_err());
    }

    #[test]
    fn docs_table_matches_the_code() {
        let docs = include_str!("../../../docs/presets.md");
        assert!(
            docs.contains(&mapping_markdown()),
            "docs/presets.md is out of date; regenerate it:\n{}",
            mapping_markdown()
        );
    }
}
