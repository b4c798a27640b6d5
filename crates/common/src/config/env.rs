//! Every config key as an environment variable, for containers and CI
//! where writing a file is a chore: `POSTERN_<KEY>` for a top-level key,
//! `POSTERN_<SECTION>_<KEY>` for a key in a section (`POSTERN_HOSTNAME`,
//! `POSTERN_SMTP_MAX_MESSAGE_SIZE`, `POSTERN_IMAP_LISTEN`).
//!
//! The names are not listed anywhere: they come from the config's own
//! `Deserialize` impls, which [`Shape::of`] walks once (serde hands every
//! struct's field names to its deserializer). A new section or key is
//! reachable from the environment without a line of code here, and a
//! variable that names no key is an error rather than a silent no-op.
//! Maps keyed by the user (`[relay.transport."example.org"]`,
//! `[pop3.accounts."x"]`) are reachable only whole, as an inline table.
//!
//! What the shape says a key holds also decides how its value is read
//! ([`value_for`]): strings are taken literally, lists may be written as
//! TOML arrays or comma-separated, booleans also as `1`/`0`/`yes`/`no`,
//! and an empty value unsets a key that is optional.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;

/// The prefix every variable has.
pub const PREFIX: &str = "POSTERN_";

/// What a config key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    Bool,
    Integer,
    Float,
    /// Strings, paths, and enums written as a word.
    Text,
    List,
    /// A table whose keys the user chooses.
    Map,
    /// A table of named keys.
    Section(BTreeMap<&'static str, Shape>),
    /// A key that may be absent (`Option`).
    Optional(Box<Shape>),
}

impl Shape {
    /// The shape of `T` as its `Deserialize` impl sees it. Fails only for
    /// a type that decides its form from the data (`deserialize_any`) or
    /// refuses every probe value; the config's tests call this for
    /// [`super::Config`], so such a field cannot slip in unnoticed.
    pub fn of<'de, T: Deserialize<'de>>() -> Result<Shape, String> {
        let mut shape = None;
        T::deserialize(Probe { out: &mut shape }).map_err(|e| e.0)?;
        shape.ok_or_else(|| "no shape found".to_string())
    }

    /// Every key's variable name (without [`PREFIX`]), its path in the
    /// TOML table and its shape. Where two paths give one name (a
    /// top-level `smtp_listen` beside `[smtp] listen`) the key of the
    /// deeper section wins.
    pub fn variables(&self) -> BTreeMap<String, (Vec<&'static str>, &Shape)> {
        let mut out = BTreeMap::new();
        collect(self, &mut Vec::new(), &mut out);
        out
    }
}

fn collect<'s>(
    shape: &'s Shape,
    path: &mut Vec<&'static str>,
    out: &mut BTreeMap<String, (Vec<&'static str>, &'s Shape)>,
) {
    let fields = match shape {
        Shape::Section(fields) => fields,
        Shape::Optional(inner) => return collect(inner, path, out),
        _ => return,
    };
    for (&name, field) in fields {
        path.push(name);
        let var = path.join("_").to_ascii_uppercase();
        let deeper = out
            .get(&var)
            .is_none_or(|(existing, _): &(Vec<&str>, _)| existing.len() < path.len());
        if deeper {
            out.insert(var, (path.clone(), field));
        }
        collect(field, path, out);
        path.pop();
    }
}

/// The TOML value for `raw` given to a key of `shape`; `None` means
/// "remove the key" (an empty value for an optional key).
pub fn value_for(raw: &str, shape: &Shape) -> Option<toml::Value> {
    let value = match shape {
        Shape::Optional(inner) => {
            if raw.is_empty() {
                return None;
            }
            return value_for(raw, inner);
        }
        Shape::Text => toml::Value::String(raw.to_string()),
        Shape::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            // Left as a string, so the error says what was expected.
            _ => toml::Value::String(raw.to_string()),
        },
        Shape::List => {
            let trimmed = raw.trim();
            if trimmed.starts_with('[') {
                toml_or_string(raw)
            } else {
                toml::Value::Array(
                    trimmed
                        .split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(|item| toml::Value::String(item.to_string()))
                        .collect(),
                )
            }
        }
        Shape::Integer | Shape::Float | Shape::Map | Shape::Section(_) => toml_or_string(raw),
    };
    Some(value)
}

/// `raw` read as one TOML value (`1000`, `["a", "b"]`, `{ host = "x" }`),
/// else the string itself.
fn toml_or_string(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("value = {raw}"))
        .ok()
        .filter(|table| table.len() == 1)
        .and_then(|mut table| table.remove("value"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// Sets (or with `None` removes) the key at `path` in `table`, making the
/// sections on the way.
pub fn set(table: &mut toml::Table, path: &[&str], value: Option<toml::Value>) {
    let Some((last, sections)) = path.split_last() else {
        return;
    };
    let mut at = table;
    for section in sections {
        let entry = at
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        at = next;
    }
    match value {
        Some(value) => {
            at.insert(last.to_string(), value);
        }
        None => {
            at.remove(*last);
        }
    }
}

// ---- the probe: a deserializer that records what is asked of it ----

#[derive(Debug)]
struct ProbeError(String);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ProbeError(msg.to_string())
    }
}

/// Answers every request with the simplest value of the kind asked for
/// (false, 0, "", no elements, the first variant) and writes down the kind.
struct Probe<'a> {
    out: &'a mut Option<Shape>,
}

impl Probe<'_> {
    fn record(self, shape: Shape) {
        *self.out = Some(shape);
    }
}

macro_rules! probe_integers {
    ($($method:ident => $visit:ident),*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
            self.record(Shape::Integer);
            visitor.$visit(0)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(de::Error::custom(
            "a config value whose type depends on the data cannot be named by an environment variable",
        ))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Bool);
        visitor.visit_bool(false)
    }

    probe_integers!(
        deserialize_i8 => visit_i8, deserialize_i16 => visit_i16,
        deserialize_i32 => visit_i32, deserialize_i64 => visit_i64,
        deserialize_i128 => visit_i128, deserialize_u8 => visit_u8,
        deserialize_u16 => visit_u16, deserialize_u32 => visit_u32,
        deserialize_u64 => visit_u64, deserialize_u128 => visit_u128
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Float);
        visitor.visit_f32(0.0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Float);
        visitor.visit_f64(0.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Text);
        visitor.visit_char('x')
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Text);
        visitor.visit_str("")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        let mut inner = None;
        let value = visitor.visit_some(Probe { out: &mut inner })?;
        let inner = inner.unwrap_or(Shape::Text);
        self.record(Shape::Optional(Box::new(inner)));
        Ok(value)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::List);
        visitor.visit_seq(SeqDeserializer::<_, ProbeError>::new(
            std::iter::empty::<()>(),
        ))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.record(Shape::Map);
        visitor.visit_map(MapDeserializer::<_, ProbeError>::new(std::iter::empty::<(
            (),
            (),
        )>()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        let mut access = Fields {
            fields,
            next: 0,
            shapes: BTreeMap::new(),
        };
        let value = visitor.visit_map(&mut access)?;
        self.record(Shape::Section(access.shapes));
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ProbeError> {
        let Some(first) = variants.first() else {
            return self.deserialize_any(visitor);
        };
        self.record(Shape::Text);
        visitor.visit_enum(IntoDeserializer::<ProbeError>::into_deserializer(*first))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_unit()
    }
}

/// A struct's fields, each given once with a probe as its value.
struct Fields {
    fields: &'static [&'static str],
    next: usize,
    shapes: BTreeMap<&'static str, Shape>,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        let Some(name) = self.fields.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(IntoDeserializer::<ProbeError>::into_deserializer(*name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ProbeError> {
        let name = self.fields[self.next];
        self.next += 1;
        let mut shape = None;
        let value = seed
            .deserialize(Probe { out: &mut shape })
            .map_err(|e| ProbeError(format!("{name}: {e}")))?;
        self.shapes.insert(name, shape.unwrap_or(Shape::Text));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        count: u32,
        on: bool,
        hosts: Vec<String>,
        maybe: Option<u16>,
        routes: BTreeMap<String, Inner>,
        inner: Inner,
        inner_listen: Vec<String>,
        optional_inner: Option<Inner>,
        mode: Mode,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        listen: Vec<String>,
        max_size: u64,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Reject,
        Normalize,
    }

    #[test]
    fn the_shape_of_a_struct() {
        let shape = Shape::of::<Outer>().unwrap();
        let Shape::Section(fields) = &shape else {
            panic!("{shape:?}")
        };
        assert_eq!(fields["name"], Shape::Text);
        assert_eq!(fields["count"], Shape::Integer);
        assert_eq!(fields["on"], Shape::Bool);
        assert_eq!(fields["hosts"], Shape::List);
        assert_eq!(fields["maybe"], Shape::Optional(Box::new(Shape::Integer)));
        assert_eq!(fields["routes"], Shape::Map);
        assert_eq!(fields["mode"], Shape::Text);
        assert!(matches!(fields["inner"], Shape::Section(_)));
        assert!(
            matches!(&fields["optional_inner"], Shape::Optional(s) if matches!(**s, Shape::Section(_)))
        );
    }

    #[test]
    fn variable_names_follow_the_toml_paths() {
        let shape = Shape::of::<Outer>().unwrap();
        let vars = shape.variables();
        let path = |name: &str| vars.get(name).map(|(p, _)| p.join("."));
        assert_eq!(path("NAME").as_deref(), Some("name"));
        assert_eq!(path("INNER_MAX_SIZE").as_deref(), Some("inner.max_size"));
        assert_eq!(path("INNER").as_deref(), Some("inner"));
        assert_eq!(
            path("OPTIONAL_INNER_LISTEN").as_deref(),
            Some("optional_inner.listen")
        );
        // `[inner] listen` and the top-level `inner_listen` share a name;
        // the deeper key wins.
        assert_eq!(path("INNER_LISTEN").as_deref(), Some("inner.listen"));
        // A map's entries are the user's, not keys: reachable only whole.
        assert_eq!(path("ROUTES").as_deref(), Some("routes"));
        assert!(!vars.keys().any(|k| k.starts_with("ROUTES_")));
        assert_eq!(path("NOPE"), None);
    }

    #[test]
    fn values_are_read_as_the_key_wants() {
        use toml::Value as V;
        let s = |t: &str| V::String(t.to_string());
        assert_eq!(value_for("123", &Shape::Text), Some(s("123")));
        assert_eq!(value_for("a b", &Shape::Text), Some(s("a b")));
        assert_eq!(value_for("", &Shape::Text), Some(s("")));
        assert_eq!(value_for("1000", &Shape::Integer), Some(V::Integer(1000)));
        assert_eq!(value_for("many", &Shape::Integer), Some(s("many")));
        for yes in ["true", "1", "YES", "on"] {
            assert_eq!(value_for(yes, &Shape::Bool), Some(V::Boolean(true)));
        }
        for no in ["false", "0", "no", "Off"] {
            assert_eq!(value_for(no, &Shape::Bool), Some(V::Boolean(false)));
        }
        assert_eq!(value_for("maybe", &Shape::Bool), Some(s("maybe")));
        let list = |items: &[&str]| Some(V::Array(items.iter().map(|i| s(i)).collect()));
        assert_eq!(
            value_for(r#"["127.0.0.1:2525", "[::1]:2525"]"#, &Shape::List),
            list(&["127.0.0.1:2525", "[::1]:2525"])
        );
        assert_eq!(
            value_for("127.0.0.1:2525, [::1]:2525", &Shape::List),
            list(&["127.0.0.1:2525", "[::1]:2525"])
        );
        assert_eq!(value_for("", &Shape::List), list(&[]));
        assert_eq!(value_for("[]", &Shape::List), list(&[]));
        let optional = Shape::Optional(Box::new(Shape::Text));
        assert_eq!(value_for("", &optional), None);
        assert_eq!(value_for("42", &optional), Some(s("42")));
        let table = value_for(
            r#"{ host = "smtp.example:587" }"#,
            &Shape::Optional(Box::new(Shape::Section(BTreeMap::new()))),
        )
        .unwrap();
        assert_eq!(table["host"].as_str(), Some("smtp.example:587"));
        // A value cannot smuggle in a second key.
        assert_eq!(
            value_for("1\nhostname = \"x\"", &Shape::Integer),
            Some(s("1\nhostname = \"x\""))
        );
    }

    #[test]
    fn set_makes_sections_and_removes() {
        let mut table = toml::Table::new();
        set(
            &mut table,
            &["smtp", "max_errors"],
            Some(toml::Value::Integer(3)),
        );
        set(
            &mut table,
            &["hostname"],
            Some(toml::Value::String("x".into())),
        );
        assert_eq!(table["smtp"]["max_errors"].as_integer(), Some(3));
        set(&mut table, &["hostname"], None);
        assert!(!table.contains_key("hostname"));
    }
}
