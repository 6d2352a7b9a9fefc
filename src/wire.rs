//! The binary encodings Envoy hands data over in, decoded without trusting them: proxy-wasm's
//! pairs encoding (header maps), and the `envoy.config.core.v3.Metadata` protobuf of a route's
//! metadata, which keeps every value's type (proxy-wasm's pairs form of a metadata struct does
//! not: `category: 5` and `category: true` would arrive as bytes that look like a name).

use crate::settings::Value;

/// Decodes the proxy-wasm pairs encoding: a u32 count, a u32 key length and u32 value length per
/// pair, then each key and each value followed by a NUL. Lengths rule (values may hold NULs).
pub fn decode_pairs(raw: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = raw.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let count = u32_at(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > raw.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let key_len = u32_at(4 + i * 8)?;
        let value_len = u32_at(8 + i * 8)?;
        let key_end = data.checked_add(key_len)?;
        let key = raw.get(data..key_end)?;
        let value_start = key_end.checked_add(1)?;
        let value_end = value_start.checked_add(value_len)?;
        let value = raw.get(value_start..value_end)?;
        out.push((key, value));
        data = value_end.checked_add(1)?;
    }
    if data != raw.len() {
        return None;
    }
    Some(out)
}

/// The route metadata protobuf is malformed (Envoy never sends one; a host bug would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Structs nested deeper than this in route metadata are refused.
const MAX_STRUCT_DEPTH: usize = 32;

/// The typed value of `filter_metadata[namespace]` in a serialized `Metadata` message, as a
/// JSON value (numbers as their shortest decimal text); `None` when the namespace is absent.
pub fn metadata_namespace(raw: &[u8], namespace: &str) -> Result<Option<Value>, Malformed> {
    let mut found = None;
    for field in Fields::new(raw) {
        let (number, value) = field?;
        // 1: map<string, google.protobuf.Struct> filter_metadata; the rest is not ours.
        if let (1, Wire::Bytes(entry)) = (number, value) {
            let (key, value) = map_entry(entry)?;
            if key == namespace.as_bytes() {
                found = Some(decode_struct(value.unwrap_or_default(), 0)?);
            }
        }
    }
    Ok(found)
}

/// Whether `typed_filter_metadata` (field 2) has an entry for `namespace`: a policy put there by
/// mistake, which the filter does not read.
pub fn typed_namespace(raw: &[u8], namespace: &str) -> bool {
    Fields::new(raw).any(|field| match field {
        Ok((2, Wire::Bytes(entry))) => {
            map_entry(entry).is_ok_and(|(key, _)| key == namespace.as_bytes())
        }
        _ => false,
    })
}

/// The first namespace, in `filter_metadata` or `typed_filter_metadata`, that `wanted` takes.
pub fn find_namespace(raw: &[u8], wanted: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    Fields::new(raw).find_map(|field| match field {
        Ok((1 | 2, Wire::Bytes(entry))) => map_entry(entry)
            .ok()
            .map(|(key, _)| key)
            .filter(|key| wanted(key))
            .map(<[u8]>::to_vec),
        _ => None,
    })
}

/// A map entry: field 1 the key (bytes), field 2 the value (a message), either may be absent.
fn map_entry(raw: &[u8]) -> Result<(&[u8], Option<&[u8]>), Malformed> {
    let (mut key, mut value) = (&[][..], None);
    for field in Fields::new(raw) {
        match field? {
            (1, Wire::Bytes(k)) => key = k,
            (2, Wire::Bytes(v)) => value = Some(v),
            _ => return Err(Malformed),
        }
    }
    Ok((key, value))
}

/// `google.protobuf.Struct`: field 1, map<string, Value>.
fn decode_struct(raw: &[u8], depth: usize) -> Result<Value, Malformed> {
    if depth > MAX_STRUCT_DEPTH {
        return Err(Malformed);
    }
    let mut members = Vec::new();
    for field in Fields::new(raw) {
        let (1, Wire::Bytes(entry)) = field? else {
            return Err(Malformed);
        };
        let (key, value) = map_entry(entry)?;
        let key = std::str::from_utf8(key).map_err(|_| Malformed)?.to_string();
        let value = decode_value(value.unwrap_or_default(), depth + 1)?;
        // A protobuf map keeps the last of two equal keys.
        members.retain(|(k, _): &(String, Value)| *k != key);
        members.push((key, value));
    }
    Ok(Value::Object(members))
}

/// `google.protobuf.Value`: a oneof of null (1), number (2), string (3), bool (4), struct (5)
/// and list (6). No kind set reads as null, as protobuf's JSON mapping has it.
fn decode_value(raw: &[u8], depth: usize) -> Result<Value, Malformed> {
    let mut value = Value::Null;
    for field in Fields::new(raw) {
        value = match field? {
            (1, Wire::Varint(_)) => Value::Null,
            (2, Wire::Fixed64(bits)) => Value::number(f64::from_bits(bits)),
            (3, Wire::Bytes(s)) => {
                Value::String(std::str::from_utf8(s).map_err(|_| Malformed)?.to_string())
            }
            (4, Wire::Varint(b)) => Value::Bool(b != 0),
            (5, Wire::Bytes(s)) => decode_struct(s, depth)?,
            (6, Wire::Bytes(list)) => {
                let mut items = Vec::new();
                for item in Fields::new(list) {
                    let (1, Wire::Bytes(v)) = item? else {
                        return Err(Malformed);
                    };
                    items.push(decode_value(v, depth + 1)?);
                }
                Value::Array(items)
            }
            _ => return Err(Malformed),
        };
    }
    Ok(value)
}

enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

/// The fields of one protobuf message, in order.
struct Fields<'a> {
    raw: &'a [u8],
    at: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(raw: &'a [u8]) -> Self {
        Fields {
            raw,
            at: 0,
            failed: false,
        }
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.raw.get(self.at).ok_or(Malformed)?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.at.checked_add(n).ok_or(Malformed)?;
        let bytes = self.raw.get(self.at..end).ok_or(Malformed)?;
        self.at = end;
        Ok(bytes)
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), Malformed> {
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| Malformed)?;
                Wire::Fixed64(u64::from_le_bytes(b))
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| Malformed)?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            _ => return Err(Malformed),
        };
        Ok((key >> 3, wire))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.raw.len() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Encoders for the test messages, following the protobuf wire format.
    pub mod encode {
        fn varint(mut v: u64, out: &mut Vec<u8>) {
            while v >= 0x80 {
                out.push((v as u8) | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        }

        pub fn bytes_field(number: u64, data: &[u8], out: &mut Vec<u8>) {
            varint(number << 3 | 2, out);
            varint(data.len() as u64, out);
            out.extend_from_slice(data);
        }

        pub enum V<'a> {
            Null,
            Num(f64),
            Str(&'a str),
            Bool(bool),
            Struct(Vec<(&'a str, V<'a>)>),
            List(Vec<V<'a>>),
        }

        pub fn value(v: &V) -> Vec<u8> {
            let mut out = Vec::new();
            match v {
                V::Null => {
                    varint(1 << 3, &mut out);
                    varint(0, &mut out);
                }
                V::Num(n) => {
                    varint(2 << 3 | 1, &mut out);
                    out.extend_from_slice(&n.to_bits().to_le_bytes());
                }
                V::Str(s) => bytes_field(3, s.as_bytes(), &mut out),
                V::Bool(b) => {
                    varint(4 << 3, &mut out);
                    varint(u64::from(*b), &mut out);
                }
                V::Struct(members) => bytes_field(5, &structure(members), &mut out),
                V::List(items) => {
                    let mut list = Vec::new();
                    for item in items {
                        bytes_field(1, &value(item), &mut list);
                    }
                    bytes_field(6, &list, &mut out);
                }
            }
            out
        }

        pub fn structure(members: &[(&str, V)]) -> Vec<u8> {
            let mut out = Vec::new();
            for (k, v) in members {
                let mut entry = Vec::new();
                bytes_field(1, k.as_bytes(), &mut entry);
                bytes_field(2, &value(v), &mut entry);
                bytes_field(1, &entry, &mut out);
            }
            out
        }

        /// A `Metadata` message with these `filter_metadata` namespaces.
        pub fn metadata(namespaces: &[(&str, Vec<(&str, V)>)]) -> Vec<u8> {
            let mut out = Vec::new();
            for (ns, members) in namespaces {
                let mut entry = Vec::new();
                bytes_field(1, ns.as_bytes(), &mut entry);
                bytes_field(2, &structure(members), &mut entry);
                bytes_field(1, &entry, &mut out);
            }
            out
        }
    }

    use encode::V;

    fn encode_list(items: &[&str]) -> Vec<u8> {
        let mut out = (items.len() as u32).to_le_bytes().to_vec();
        for i in items {
            out.extend((i.len() as u32).to_le_bytes());
            out.extend(0u32.to_le_bytes());
        }
        for i in items {
            out.extend(i.as_bytes());
            out.extend([0, 0]);
        }
        out
    }

    #[test]
    fn decodes_pairs() {
        let raw = encode_list(&["a", "bc"]);
        assert_eq!(
            decode_pairs(&raw),
            Some(vec![(&b"a"[..], &b""[..]), (&b"bc"[..], &b""[..])])
        );
        assert_eq!(decode_pairs(&raw[..raw.len() - 1]), None);
        assert_eq!(decode_pairs(&[1, 0, 0]), None);
        assert_eq!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(decode_pairs(&0u32.to_le_bytes()), Some(vec![]));
    }

    #[test]
    fn decodes_a_namespace_with_its_types() {
        let raw = encode::metadata(&[
            ("other", vec![("category", V::Str("Nope"))]),
            (
                "consent_gate",
                vec![
                    ("category", V::Str("Advertising")),
                    ("categories", V::List(vec![V::Str("A"), V::Num(5.0)])),
                    ("match", V::Bool(true)),
                    ("n", V::Num(0.5)),
                    ("none", V::Null),
                    ("nested", V::Struct(vec![("x", V::Str("y"))])),
                ],
            ),
        ]);
        let value = metadata_namespace(&raw, "consent_gate").unwrap().unwrap();
        assert_eq!(
            value,
            Value::Object(vec![
                ("category".into(), Value::String("Advertising".into())),
                (
                    "categories".into(),
                    Value::Array(vec![Value::String("A".into()), Value::number(5.0)])
                ),
                ("match".into(), Value::Bool(true)),
                ("n".into(), Value::number(0.5)),
                ("none".into(), Value::Null),
                (
                    "nested".into(),
                    Value::Object(vec![("x".into(), Value::String("y".into()))])
                ),
            ])
        );
        assert_eq!(metadata_namespace(&raw, "absent"), Ok(None));
        assert_eq!(metadata_namespace(&[], "consent_gate"), Ok(None));
        assert!(!typed_namespace(&raw, "consent_gate"));
    }

    #[test]
    fn finds_a_namespace_in_typed_filter_metadata() {
        // typed_filter_metadata (field 2): map<string, Any>, an entry keyed by the namespace.
        let mut entry = Vec::new();
        encode::bytes_field(1, b"consent_gate", &mut entry);
        encode::bytes_field(2, b"\x0a\x05any://", &mut entry);
        let mut raw = encode::metadata(&[("other", vec![("category", V::Str("A"))])]);
        encode::bytes_field(2, &entry, &mut raw);
        assert!(typed_namespace(&raw, "consent_gate"));
        assert!(!typed_namespace(&raw, "other"));
        assert_eq!(metadata_namespace(&raw, "consent_gate"), Ok(None));
    }

    #[test]
    fn refuses_malformed_messages() {
        let raw = encode::metadata(&[("ns", vec![("category", V::Str("A"))])]);
        for cut in 1..raw.len() {
            assert_eq!(
                metadata_namespace(&raw[..cut], "ns"),
                Err(Malformed),
                "{cut}"
            );
        }
        assert_eq!(metadata_namespace(&[0x0b], "ns"), Err(Malformed)); // wire type 3
        let mut bad_utf8 = Vec::new();
        encode::bytes_field(3, &[0xff], &mut bad_utf8);
        let mut entry = Vec::new();
        encode::bytes_field(1, b"category", &mut entry);
        encode::bytes_field(2, &bad_utf8, &mut entry);
        let mut st = Vec::new();
        encode::bytes_field(1, &entry, &mut st);
        let mut ns = Vec::new();
        encode::bytes_field(1, b"ns", &mut ns);
        encode::bytes_field(2, &st, &mut ns);
        let mut md = Vec::new();
        encode::bytes_field(1, &ns, &mut md);
        assert_eq!(metadata_namespace(&md, "ns"), Err(Malformed));
        // Nesting is bounded.
        let mut deep = V::Str("x");
        for _ in 0..100 {
            deep = V::Struct(vec![("k", deep)]);
        }
        let raw = encode::metadata(&[("ns", vec![("k", deep)])]);
        assert_eq!(metadata_namespace(&raw, "ns"), Err(Malformed));
    }
}
