//! Every failing field of a body, not only the first: serde stops at the
//! first error, so the value is deserialized again and again, each time past
//! one more error, until it goes through (or [`MAX_ERRORS`] are named).
//!
//! Getting past an error means changing the value where it failed: a member
//! the type does not allow is removed; a value of the wrong type, or a
//! required member that is missing, is replaced by a placeholder that
//! [`Lenient`] deserializes as whatever the type asks for (zero, empty,
//! `None`), so the rest of the document is still read and judged.
//!
//! Written here because no crate does it for serde: `serde_path_to_error`
//! names one error's place, and validation crates check values after they
//! were deserialized, not the deserialization itself.

use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, Error};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, VariantAccess, Visitor,
};
use serde_json::Value;

/// The most failing fields named in one answer.
pub(super) const MAX_ERRORS: usize = 20;

/// Stands for a value to get past. A client could send this very string (as
/// `\u0000` escapes); it would then only be read as a default while errors
/// are collected, never on the way to a handler, so at worst one error of
/// that body goes unnamed.
const PLACEHOLDER: &str = "\u{0}verdict:placeholder\u{0}";

/// How deep placeholders build defaults for nested types (a recursive type
/// without an `Option` in the way would otherwise never end).
const MAX_DEFAULT_DEPTH: usize = 32;

/// Each failing field as `(pointer, message)`, in the order found, after
/// deserializing `T` from `value` past each error; empty if it deserializes.
pub(super) fn all_errors<T: DeserializeOwned>(mut value: Value) -> Vec<(String, String)> {
    let mut errors: Vec<(String, String)> = Vec::new();
    while errors.len() < MAX_ERRORS {
        let e = match serde_path_to_error::deserialize::<_, T>(Lenient::new(&value)) {
            Ok(_) => break,
            Err(e) => e,
        };
        let pointer = super::pointer_of(e.path());
        let message = e.inner().to_string();
        let (at, detail) = super::client_message(&pointer, &message);
        if errors.iter().any(|(p, _)| *p == at) {
            // No way past it: stop rather than loop.
            break;
        }
        errors.push((at.clone(), detail));
        let get_past = if message.starts_with("unknown field `") {
            remove(&mut value, &at)
        } else {
            replace(&mut value, &at)
        };
        if !get_past {
            break;
        }
    }
    errors
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The parent of `pointer` and its last token.
fn split(pointer: &str) -> Option<(&str, String)> {
    let (parent, last) = pointer.rsplit_once('/')?;
    Some((parent, unescape(last)))
}

fn lookup_mut<'a>(value: &'a mut Value, pointer: &str) -> Option<&'a mut Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    value.pointer_mut(pointer)
}

/// Removes the member at `pointer`; whether there was one.
fn remove(value: &mut Value, pointer: &str) -> bool {
    let Some((parent, key)) = split(pointer) else {
        return false;
    };
    match lookup_mut(value, parent) {
        Some(Value::Object(m)) => m.remove(&key).is_some(),
        _ => false,
    }
}

/// Puts a placeholder at `pointer` (in place of a value, or for a missing member).
fn replace(value: &mut Value, pointer: &str) -> bool {
    if let Some(slot) = lookup_mut(value, pointer) {
        if slot.as_str() == Some(PLACEHOLDER) {
            return false;
        }
        *slot = Value::String(PLACEHOLDER.into());
        return true;
    }
    let Some((parent, key)) = split(pointer) else {
        return false;
    };
    match lookup_mut(value, parent) {
        Some(Value::Object(m)) => {
            m.insert(key, Value::String(PLACEHOLDER.into()));
            true
        }
        _ => false,
    }
}

/// A JSON value as a serde `Deserializer` that answers a placeholder with
/// the default of whatever type is asked for.
#[derive(Clone, Copy)]
pub(super) struct Lenient<'a> {
    value: &'a Value,
}

impl<'a> Lenient<'a> {
    pub(super) fn new(value: &'a Value) -> Self {
        Lenient { value }
    }

    fn is_placeholder(&self) -> bool {
        self.value.as_str() == Some(PLACEHOLDER)
    }
}

macro_rules! defaulted {
    ($($method:ident => $visit:ident($default:expr)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                if self.is_placeholder() {
                    return visitor.$visit($default);
                }
                self.deserialize_any(visitor)
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Lenient<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.is_placeholder() {
            return visitor.visit_unit();
        }
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(0.0))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Seq {
                items: items.iter(),
            }),
            Value::Object(members) => visitor.visit_map(Members {
                members: members.iter(),
                pending: None,
            }),
        }
    }

    defaulted! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0),
        deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0),
        deserialize_i128 => visit_i64(0),
        deserialize_u8 => visit_u64(0),
        deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0),
        deserialize_u64 => visit_u64(0),
        deserialize_u128 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('\u{0}'),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_bytes => visit_bytes(&[]),
        deserialize_byte_buf => visit_bytes(&[]),
        deserialize_identifier => visit_str(""),
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.is_placeholder() {
            return visitor.visit_unit();
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.is_placeholder() || self.value.is_null() {
            return visitor.visit_none();
        }
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if self.is_placeholder() {
            return Defaults { depth: 0 }.deserialize_newtype_struct(name, visitor);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.is_placeholder() {
            return Defaults { depth: 0 }.deserialize_seq(visitor);
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        if self.is_placeholder() {
            return Defaults { depth: 0 }.deserialize_tuple(len, visitor);
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.is_placeholder() {
            return Defaults { depth: 0 }.deserialize_map(visitor);
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if self.is_placeholder() {
            return Defaults { depth: 0 }.deserialize_struct(name, fields, visitor);
        }
        if self.value.is_array() {
            // A JSON API's objects are objects (serde would read an array as
            // a struct's fields in order, and then name the struct).
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &visitor));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if self.is_placeholder() {
            return Defaults { depth: 0 }.deserialize_enum(name, variants, visitor);
        }
        match self.value {
            Value::String(s) => visitor.visit_enum(
                IntoDeserializer::<'de, Error>::into_deserializer(s.as_str()),
            ),
            Value::Object(m) if m.len() == 1 => {
                let (variant, content) = m.iter().next().expect("one member");
                visitor.visit_enum(Variant {
                    name: variant,
                    content: Lenient::new(content),
                })
            }
            _ => self.deserialize_any(visitor),
        }
    }
}

struct Seq<'a> {
    items: std::slice::Iter<'a, Value>,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            Some(v) => seed.deserialize(Lenient::new(v)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Members<'a> {
    members: serde_json::map::Iter<'a>,
    pending: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for Members<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.members.next() {
            Some((k, v)) => {
                self.pending = Some(v);
                seed.deserialize(BorrowedStrDeserializer::new(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("a value without its key"))?;
        seed.deserialize(Lenient::new(value))
    }
}

struct Variant<'a> {
    name: &'a str,
    content: Lenient<'a>,
}

impl<'de> EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = Lenient<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Error> {
        let name = seed.deserialize(BorrowedStrDeserializer::<Error>::new(self.name))?;
        Ok((name, self.content))
    }
}

impl<'de> VariantAccess<'de> for Lenient<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_struct("", fields, visitor)
    }
}

/// The default of any type: what a placeholder deserializes as.
#[derive(Clone, Copy)]
struct Defaults {
    depth: usize,
}

impl Defaults {
    fn deeper(self) -> Result<Defaults, Error> {
        if self.depth >= MAX_DEFAULT_DEPTH {
            return Err(de::Error::custom("is not valid"));
        }
        Ok(Defaults {
            depth: self.depth + 1,
        })
    }
}

impl<'de> Deserializer<'de> for Defaults {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bool(false)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(0)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(0.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_char('\u{0}')
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str("")
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_none()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self.deeper()?)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(DefaultItems { left: 0, of: self })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(DefaultItems {
            left: len,
            of: self.deeper()?,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(DefaultFields {
            fields: [].iter(),
            of: self,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(DefaultFields {
            fields: fields.iter(),
            of: self.deeper()?,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let first = variants.first().copied().unwrap_or("");
        visitor.visit_enum(DefaultVariant {
            name: first,
            of: self.deeper()?,
        })
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u32 u128 f32 string bytes byte_buf unit unit_struct
        identifier ignored_any
    }
}

struct DefaultItems {
    left: usize,
    of: Defaults,
}

impl<'de> SeqAccess<'de> for DefaultItems {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.of).map(Some)
    }
}

struct DefaultFields {
    fields: std::slice::Iter<'static, &'static str>,
    of: Defaults,
}

impl<'de> MapAccess<'de> for DefaultFields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.fields.next() {
            Some(f) => seed.deserialize(BorrowedStrDeserializer::new(f)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(self.of)
    }
}

struct DefaultVariant {
    name: &'static str,
    of: Defaults,
}

impl<'de> EnumAccess<'de> for DefaultVariant {
    type Error = Error;
    type Variant = Defaults;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Defaults), Error> {
        let name = seed.deserialize(BorrowedStrDeserializer::<Error>::new(self.name))?;
        Ok((name, self.of))
    }
}

impl<'de> VariantAccess<'de> for Defaults {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_struct("", fields, visitor)
    }
}

impl fmt::Debug for Lenient<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lenient").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Address {
        street: String,
        number: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Person {
        name: String,
        age: u8,
        address: Address,
        tags: Vec<String>,
        nick: Option<String>,
    }

    #[test]
    fn every_failing_field_is_named() {
        let errors = all_errors::<Person>(json!({
            "name": 5,
            "address": {"street": "Main", "number": "x", "zip": 1},
            "tags": ["a", 7],
            "extra": true
        }));
        let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        for p in [
            "/name",
            "/age",
            "/address/number",
            "/address/zip",
            "/tags/1",
            "/extra",
        ] {
            assert!(pointers.contains(&p), "{p} in {pointers:?}");
        }
        assert_eq!(errors.len(), 6, "{errors:?}");
    }

    #[test]
    fn a_valid_value_has_no_errors_and_the_placeholder_is_never_leaked() {
        let ok =
            json!({"name": "a", "age": 1, "address": {"street": "s", "number": 2}, "tags": []});
        assert!(all_errors::<Person>(ok).is_empty());
        let errors = all_errors::<Person>(json!({}));
        assert!(
            errors.iter().all(|(_, d)| !d.contains("placeholder")),
            "{errors:?}"
        );
        assert_eq!(errors.len(), 4, "{errors:?}");
    }
}
