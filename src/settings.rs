//! Reading typed settings — the plugin configuration, a route's metadata, a per-route
//! configuration — with serde, into structs that refuse unknown keys, and with errors that name
//! the key and the value found, for the log line that makes Envoy refuse a configuration (or a
//! route) and says what to fix.
//!
//! The JSON text is read by the filter's own strict scanner into a small tree (a key given twice
//! is refused, never "last wins"), and serde reads the structs from that tree through the
//! deserializer below. serde_json would do the same, at a quarter of the wasm module's size.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, Expected, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, Visitor,
};

use crate::json::{Invalid, Scanner};

/// A settings value. Route metadata (typed protobuf) and JSON text both read into it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    /// Members in order; no key twice.
    Object(Vec<(String, Value)>),
}

/// Settings only take whole numbers; any other is kept only to be named in an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    Integer(i64),
    /// A number with a fraction or an exponent, or too large: its text, where there is one.
    Other(String),
}

impl Value {
    /// Reads JSON text into a tree; a key given twice in one object is refused.
    pub fn parse(text: &str) -> Result<Value, String> {
        let mut s = Scanner::new(text);
        let value = parse_value(&mut s, "", 0).map_err(|e| match e {
            TreeError::Syntax => format!("is not valid JSON (at byte {})", s.pos()),
            TreeError::Repeated(path) => format!("the key \"{path}\" is given twice"),
        })?;
        if !s.at_end() {
            return Err(format!("is not valid JSON (at byte {})", s.pos()));
        }
        Ok(value)
    }

    /// A protobuf double: whole numbers as integers.
    pub fn number(n: f64) -> Value {
        if n.is_finite() && n.fract() == 0.0 && n.abs() < 9e15 {
            Value::Number(Number::Integer(n as i64))
        } else {
            Value::Number(Number::Other(name_number(n)))
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A number that is not a whole one, as an error names it: to six decimals, written with integer
/// arithmetic only (`format!("{n}")` would bring 13 KB of float formatting into the wasm module,
/// for error messages alone).
fn name_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    let sign = if n < 0.0 { "-" } else { "" };
    let n = n.abs();
    if n >= 9e15 {
        return format!("{sign}a number of 16 digits or more");
    }
    let whole = n.trunc();
    // The fraction of a double is exact; rounded up to a whole millionth, it stays below one.
    let micros = ((n - whole) * 1e6).round().min(999_999.0) as u64;
    let fraction = format!("{micros:06}");
    match fraction.trim_end_matches('0') {
        "" => format!("{sign}{}", whole as u64),
        digits => format!("{sign}{}.{digits}", whole as u64),
    }
}

enum TreeError {
    Syntax,
    Repeated(String),
}

impl From<Invalid> for TreeError {
    fn from(_: Invalid) -> Self {
        TreeError::Syntax
    }
}

fn parse_value(s: &mut Scanner, path: &str, depth: usize) -> Result<Value, TreeError> {
    if depth > 64 {
        return Err(TreeError::Syntax);
    }
    Ok(match s.peek_token() {
        Some(b'{') => {
            let mut members: Vec<(String, Value)> = Vec::new();
            if s.object_start()? {
                loop {
                    let key = s.key()?.decode().into_owned();
                    let here = join(path, &key);
                    if members.iter().any(|(k, _)| *k == key) {
                        return Err(TreeError::Repeated(here));
                    }
                    let value = parse_value(s, &here, depth + 1)?;
                    members.push((key, value));
                    if !s.object_more()? {
                        break;
                    }
                }
            }
            Value::Object(members)
        }
        Some(b'[') => {
            let mut items = Vec::new();
            if s.array_start()? {
                loop {
                    let here = format!("{path}[{}]", items.len());
                    items.push(parse_value(s, &here, depth + 1)?);
                    if !s.array_more()? {
                        break;
                    }
                }
            }
            Value::Array(items)
        }
        Some(b'"') => Value::String(s.string()?.decode().into_owned()),
        Some(b'-' | b'0'..=b'9') => {
            let text = s.number_text()?;
            Value::Number(match text.parse::<i64>() {
                Ok(n) => Number::Integer(n),
                Err(_) => Number::Other(text.to_string()),
            })
        }
        _ => match s.literal_word()? {
            Some(b) => Value::Bool(b),
            None => Value::Null,
        },
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Reads `T` from JSON text holding an object.
/// `text` for an error message: its control characters written out (`\t`, `\u{0}`), so that
/// the mistake shows. (`{:?}` would bring Unicode's printable-character tables into the module
/// for messages alone.)
pub fn shown(text: &str) -> String {
    text.chars()
        .map(|ch| match ch {
            '\t' => "\\t".to_string(),
            ch if ch.is_control() => format!("\\u{{{:x}}}", u32::from(ch)),
            ch => ch.to_string(),
        })
        .collect()
}

pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    from_value(&Value::parse(text)?)
}

/// Reads `T` from a value holding an object. No setting takes `null`: serde would read it as an
/// absent key, and a route with `category: null` would silently not be gated, so it is refused.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    if !matches!(value, Value::Object(_)) {
        return Err(format!("must be an object, got {}", describe(value)));
    }
    if let Some(path) = null_at(value, "") {
        return Err(format!(
            "\"{path}\" is null: give it a value, or leave the key out"
        ));
    }
    T::deserialize(De(value)).map_err(|e| e.explain(value))
}

/// The path of the first null in `value`.
fn null_at(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::Null => Some(path.to_string()),
        Value::Object(members) => members.iter().find_map(|(k, v)| null_at(v, &join(path, k))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| null_at(v, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// A value, described for a log line: its type, and short scalars themselves.
pub fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= 40 => format!("the string \"{s}\""),
        Value::String(_) => "a string".into(),
        Value::Number(Number::Integer(n)) => format!("the number {n}"),
        Value::Number(Number::Other(t)) if !t.is_empty() && t.len() <= 20 => {
            format!("the number {t}")
        }
        Value::Number(Number::Other(_)) => "a number that is not a whole number".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Null => "null".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// What went wrong, and where (the path is built as the error goes up).
#[derive(Debug)]
pub struct Error {
    path: Vec<String>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Message(String),
    Type {
        expected: String,
    },
    UnknownKey {
        key: String,
        expected: &'static [&'static str],
    },
    UnknownVariant {
        found: String,
        expected: &'static [&'static str],
    },
    Missing(&'static str),
}

impl Error {
    fn at(mut self, segment: String) -> Self {
        self.path.push(segment);
        self
    }

    /// The message, with the value found (looked up in `root`) where it helps.
    fn explain(self, root: &Value) -> String {
        let mut path = String::new();
        for segment in self.path.iter().rev() {
            if segment.starts_with('[') {
                path.push_str(segment);
            } else {
                path = join(&path, segment);
            }
        }
        let found = lookup(root, &self.path);
        match self.kind {
            Kind::UnknownKey { key, expected } => {
                let value = found
                    .and_then(|parent| parent.get(&key))
                    .map(|v| format!(" ({})", describe(v)))
                    .unwrap_or_default();
                let place = if path.is_empty() {
                    String::new()
                } else {
                    format!(" in \"{path}\"")
                };
                format!(
                    "unknown key \"{key}\"{value}{place}; the keys are {}",
                    quoted_list(expected)
                )
            }
            Kind::UnknownVariant { found, expected } => {
                format!(
                    "\"{path}\" must be one of {}, got \"{found}\"",
                    quoted_list(expected)
                )
            }
            Kind::Missing(field) => format!("\"{}\" is required", join(&path, field)),
            Kind::Type { expected } => {
                let got = found.map_or_else(|| "another value".into(), describe);
                let subject = if path.is_empty() {
                    String::new()
                } else {
                    format!("\"{path}\" ")
                };
                format!("{subject}must be {expected}, got {got}")
            }
            Kind::Message(m) if path.is_empty() => m,
            Kind::Message(m) => format!("\"{path}\": {m}"),
        }
    }
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The value at a path built by [`Error::at`] (innermost segment first).
fn lookup<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut v = root;
    for segment in path.iter().rev() {
        v = match (
            v,
            segment.strip_prefix('[').and_then(|i| i.strip_suffix(']')),
        ) {
            (Value::Array(items), Some(i)) => items.get(i.parse::<usize>().ok()?)?,
            (Value::Object(_), None) => v.get(segment)?,
            _ => return None,
        };
    }
    Some(v)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:?}", self.kind)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        Error {
            path: Vec::new(),
            kind: Kind::Message(msg.to_string()),
        }
    }

    fn invalid_type(_: Unexpected, expected: &dyn Expected) -> Self {
        Error {
            path: Vec::new(),
            kind: Kind::Type {
                expected: plain_type(&expected.to_string()),
            },
        }
    }

    fn invalid_value(found: Unexpected, expected: &dyn Expected) -> Self {
        Self::invalid_type(found, expected)
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Error {
            path: Vec::new(),
            kind: Kind::UnknownKey {
                key: field.to_string(),
                expected,
            },
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Error {
            path: Vec::new(),
            kind: Kind::UnknownVariant {
                found: variant.to_string(),
                expected,
            },
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Error {
            path: Vec::new(),
            kind: Kind::Missing(field),
        }
    }
}

/// serde's name for an expected type, in words.
fn plain_type(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number".into(),
        "a sequence" => "a list".into(),
        "a map" => "an object".into(),
        "a boolean" => "true or false".into(),
        other if other.starts_with("struct ") => "an object".into(),
        other => other.replace('`', "\""),
    }
}

/// serde's view of a [`Value`].
struct De<'v>(&'v Value);

impl<'de> Deserializer<'de> for De<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(Number::Integer(n)) => match u64::try_from(*n) {
                Ok(u) => visitor.visit_u64(u),
                Err(_) => visitor.visit_i64(*n),
            },
            Value::Number(Number::Other(_)) => Err(de::Error::invalid_type(
                Unexpected::Other("a number that is not a whole number"),
                &visitor,
            )),
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visitor.visit_seq(Items {
                iter: items.iter().enumerate(),
            }),
            Value::Object(members) => visitor.visit_map(Members {
                iter: members.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            // Unit variants, spelled as strings.
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => Err(Error {
                path: Vec::new(),
                kind: Kind::Type {
                    expected: format!("one of {}", quoted_list(variants)),
                },
            }),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct Items<'v> {
    iter: std::iter::Enumerate<std::slice::Iter<'v, Value>>,
}

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.iter.next() {
            Some((i, v)) => seed
                .deserialize(De(v))
                .map(Some)
                .map_err(|e| e.at(format!("[{i}]"))),
            None => Ok(None),
        }
    }
}

struct Members<'v> {
    iter: std::slice::Iter<'v, (String, Value)>,
    value: Option<(&'v str, &'v Value)>,
}

impl<'de> MapAccess<'de> for Members<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some((k, v));
                let key: de::value::BorrowedStrDeserializer<'de, Error> =
                    de::value::BorrowedStrDeserializer::new(k);
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (key, value) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value without its key"))?;
        seed.deserialize(De(value))
            .map_err(|e| e.at(key.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn numbers_that_are_not_whole_are_named_to_six_decimals() {
        let named = |n: f64| match Value::number(n) {
            Value::Number(Number::Other(text)) => text,
            other => panic!("{other:?}"),
        };
        assert_eq!(named(5.5), "5.5");
        assert_eq!(named(-0.25), "-0.25");
        assert_eq!(named(0.1), "0.1");
        assert_eq!(named(1.0 / 3.0), "0.333333");
        assert_eq!(named(2.9999999), "2.999999");
        assert_eq!(named(1e-9), "0");
        assert_eq!(named(1e20), "a number of 16 digits or more");
        assert_eq!(named(f64::NEG_INFINITY), "-a number of 16 digits or more");
        assert_eq!(named(f64::NAN), "NaN");
        assert!(matches!(
            Value::number(5.0),
            Value::Number(Number::Integer(5))
        ));
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Slow,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        count: Option<u16>,
        flag: Option<bool>,
        mode: Option<Mode>,
        items: Option<Vec<Inner>>,
    }

    #[test]
    fn reads_typed_structs() {
        let o: Outer = from_str(
            r#"{"count":5,"flag":true,"mode":"slow","items":[{"name":"a","tags":["x"]}]}"#,
        )
        .unwrap();
        assert_eq!(o.count, Some(5));
        assert!(matches!(o.mode, Some(Mode::Slow)));
        assert_eq!(o.items.unwrap()[0].tags, vec!["x".to_string()]);
        let empty: Outer = from_str("{}").unwrap();
        assert!(empty.count.is_none() && empty.items.is_none());
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let err = |text: &str| from_str::<Outer>(text).unwrap_err();
        assert_eq!(
            err(r#"{"colour":"red"}"#),
            r#"unknown key "colour" (the string "red"); the keys are "count", "flag", "mode", "items""#
        );
        assert_eq!(
            err(r#"{"count":"5"}"#),
            r#""count" must be a whole number, got the string "5""#
        );
        assert_eq!(
            err(r#"{"count":-5}"#),
            r#""count" must be a whole number, got the number -5"#
        );
        assert_eq!(
            err(r#"{"count":1.5}"#),
            r#""count" must be a whole number, got the number 1.5"#
        );
        assert_eq!(
            err(r#"{"flag":1}"#),
            r#""flag" must be true or false, got the number 1"#
        );
        assert_eq!(
            err(r#"{"mode":"medium"}"#),
            r#""mode" must be one of "fast", "slow", got "medium""#
        );
        assert_eq!(
            err(r#"{"mode":5}"#),
            r#""mode" must be one of "fast", "slow", got the number 5"#
        );
        assert_eq!(
            err(r#"{"items":{}}"#),
            r#""items" must be a list, got an object"#
        );
        assert_eq!(err(r#"{"items":[{}]}"#), r#""items[0].name" is required"#);
        assert_eq!(
            err(r#"{"items":[{"name":"a","tags":["x",5]}]}"#),
            r#""items[0].tags[1]" must be a string, got the number 5"#
        );
        assert_eq!(
            err(r#"{"items":[{"name":"a","nmae":"b"}]}"#),
            r#"unknown key "nmae" (the string "b") in "items[0]"; the keys are "name", "tags""#
        );
        assert_eq!(
            err(r#"{"flag":true,"flag":false}"#),
            r#"the key "flag" is given twice"#
        );
        assert_eq!(
            err(r#"{"items":[{"name":"a"},{"name":"b","n\u0061me":"c"}]}"#),
            r#"the key "items[1].name" is given twice"#
        );
        assert_eq!(
            err(r#"{"flag":null}"#),
            r#""flag" is null: give it a value, or leave the key out"#
        );
        assert!(err("{").starts_with("is not valid JSON"));
        assert!(err(r#"{"flag":true} x"#).starts_with("is not valid JSON"));
        assert_eq!(err("[1]"), "must be an object, got a list");
    }
}
