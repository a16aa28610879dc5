//! JSON Schema's `integer` admits `3.0`; serde's `u32` does not. Request
//! fields documented as integers accept integral numbers written either way.

use serde::de::{Deserialize, Deserializer, Error};

fn to_u64<E: Error>(n: serde_json::Number) -> Result<u64, E> {
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(f as u64),
        _ => Err(E::custom("must be a non-negative integer")),
    }
}

/// A `u32`, from `7` or `7.0`.
pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = to_u64(serde_json::Number::deserialize(d)?)?;
    u32::try_from(v).map_err(|_| D::Error::custom("must be at most 4294967295"))
}

/// An optional `u32` (absent or `null`: `None`).
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => {
            let v = to_u64(n)?;
            u32::try_from(v)
                .map(Some)
                .map_err(|_| D::Error::custom("must be at most 4294967295"))
        }
    }
}

/// An optional `u64`.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?
        .map(to_u64)
        .transpose()
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::u32")]
        a: u32,
        #[serde(default, deserialize_with = "super::opt_u32")]
        b: Option<u32>,
    }

    #[test]
    fn integral_floats_are_integers() {
        let t: T = serde_json::from_str(r#"{"a": 3.0, "b": null}"#).unwrap();
        assert_eq!((t.a, t.b), (3, None));
        assert!(serde_json::from_str::<T>(r#"{"a": 3.5}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a": -1}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a": 4294967296}"#).is_err());
    }
}
