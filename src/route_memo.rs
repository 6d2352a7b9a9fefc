//! A route's setting, remembered by the metadata it was read from.
//!
//! The dynamic module reads a route's metadata namespace with one typed host call per value,
//! then parses it into a [`RouteSetting`], for every request. The host calls are cheap; building
//! the [`Value`] tree and parsing it are not (allocations, serde). A worker sees the same few
//! routes again and again, so the host writes what it read into a flat byte string
//! ([`FlatMetadata`]): equal bytes are equal metadata, which parses to an equal setting (errors
//! included), and the parse is done once per distinct metadata and match mode.
//!
//! Nothing is keyed by a route's identity (a reloaded route may reuse an address): only by what
//! was read, so a changed route is a new entry. The memo holds a few entries, replaced in turn.

use crate::policy::{Match, RouteSetting};
use crate::settings::Value;

/// How many distinct route metadata a memo remembers.
pub const CAPACITY: usize = 16;

const KEY: u8 = b'K';
const STRING: u8 = b'S';
const NUMBER: u8 = b'N';
const BOOL: u8 = b'B';
const LIST: u8 = b'L';
/// A value none of the typed getters takes (a nested struct, or a null).
const OTHER: u8 = b'O';

/// A route's metadata namespace as the host read it: its keys in order, each with its typed
/// value. Written by the host, read back into a [`Value`] only when the memo has no entry for it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlatMetadata {
    bytes: Vec<u8>,
}

impl FlatMetadata {
    pub const fn new() -> FlatMetadata {
        FlatMetadata { bytes: Vec::new() }
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
    }

    fn with_len(&mut self, tag: u8, len: usize) {
        self.bytes.push(tag);
        self.bytes.extend_from_slice(&(len as u64).to_le_bytes());
    }

    fn with_bytes(&mut self, tag: u8, bytes: &[u8]) {
        self.with_len(tag, bytes.len());
        self.bytes.extend_from_slice(bytes);
    }

    /// The next member's key; its value follows.
    pub fn key(&mut self, key: &[u8]) {
        self.with_bytes(KEY, key);
    }

    pub fn string(&mut self, value: &[u8]) {
        self.with_bytes(STRING, value);
    }

    pub fn number(&mut self, value: f64) {
        self.bytes.push(NUMBER);
        self.bytes.extend_from_slice(&value.to_bits().to_le_bytes());
    }

    pub fn bool(&mut self, value: bool) {
        self.bytes.push(BOOL);
        self.bytes.push(u8::from(value));
    }

    /// A list of `len` items; the items follow (strings, numbers, bools or others).
    pub fn list(&mut self, len: usize) {
        self.with_len(LIST, len);
    }

    /// A value none of the typed getters takes (a nested struct, or a null).
    pub fn other(&mut self) {
        self.bytes.push(OTHER);
    }

    /// The namespace as a [`Value::Object`], exactly as the host would have built it directly:
    /// strings through `from_utf8_lossy`, numbers through [`Value::number`], and an unreadable
    /// value as an empty object. `None` if the bytes are not a sequence of members.
    pub fn to_value(&self) -> Option<Value> {
        let mut r = Reader {
            rest: self.bytes.as_slice(),
        };
        let mut members = Vec::new();
        while !r.rest.is_empty() {
            let key = match r.tag()? {
                KEY => r.text()?,
                _ => return None,
            };
            let value = r.value(true)?;
            members.push((key, value));
        }
        Some(Value::Object(members))
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, tail) = self.rest.split_at_checked(n)?;
        self.rest = tail;
        Some(head)
    }

    fn tag(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn text(&mut self) -> Option<String> {
        let len = usize::try_from(self.u64()?).ok()?;
        Some(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    /// One value; a list only where `lists` (list items are scalars).
    fn value(&mut self, lists: bool) -> Option<Value> {
        Some(match self.tag()? {
            STRING => Value::String(self.text()?),
            NUMBER => Value::number(f64::from_bits(self.u64()?)),
            BOOL => Value::Bool(*self.take(1)?.first()? != 0),
            LIST if lists => {
                let len = usize::try_from(self.u64()?).ok()?;
                let mut items = Vec::with_capacity(len.min(64));
                for _ in 0..len {
                    items.push(self.value(false)?);
                }
                Value::Array(items)
            }
            OTHER => Value::Object(Vec::new()),
            _ => return None,
        })
    }
}

struct Entry {
    metadata: FlatMetadata,
    default_match: Match,
    setting: Result<RouteSetting, String>,
}

/// The settings parsed from the last few distinct route metadata (one memo per worker thread).
#[derive(Default)]
pub struct RouteMemo {
    entries: Vec<Entry>,
    /// The entry replaced next when the memo is full.
    next: usize,
}

impl RouteMemo {
    pub const fn new() -> RouteMemo {
        RouteMemo {
            entries: Vec::new(),
            next: 0,
        }
    }

    /// The setting `metadata` gives under `default_match`: remembered, or parsed (with
    /// [`RouteSetting::from_value`]) and remembered.
    pub fn setting(
        &mut self,
        metadata: &FlatMetadata,
        default_match: Match,
    ) -> Result<RouteSetting, String> {
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.default_match == default_match && e.metadata == *metadata)
        {
            return e.setting.clone();
        }
        let setting = match metadata.to_value() {
            Some(value) => RouteSetting::from_value(&value, default_match),
            None => Err("cannot be read".to_string()),
        };
        let entry = Entry {
            metadata: metadata.clone(),
            default_match,
            setting: setting.clone(),
        };
        if self.entries.len() < CAPACITY {
            self.entries.push(entry);
        } else if let Some(slot) = self.entries.get_mut(self.next) {
            *slot = entry;
            self.next = (self.next + 1) % CAPACITY;
        }
        setting
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the dynamic module's host would build directly for these members.
    fn flat(members: &[(&str, Value)]) -> FlatMetadata {
        let mut f = FlatMetadata::new();
        for (k, v) in members {
            f.key(k.as_bytes());
            write(&mut f, v);
        }
        f
    }

    fn write(f: &mut FlatMetadata, v: &Value) {
        match v {
            Value::String(s) => f.string(s.as_bytes()),
            Value::Bool(b) => f.bool(*b),
            Value::Number(crate::settings::Number::Integer(n)) => f.number(*n as f64),
            Value::Array(items) => {
                f.list(items.len());
                for i in items {
                    write(f, i);
                }
            }
            _ => f.other(),
        }
    }

    #[test]
    fn reads_back_what_the_host_read() {
        let members = vec![
            ("category".to_string(), Value::String("Advertising".into())),
            (
                "categories".to_string(),
                Value::Array(vec![
                    Value::String("A".into()),
                    Value::number(3.0),
                    Value::Bool(false),
                    Value::Object(Vec::new()),
                ]),
            ),
            ("exempt".to_string(), Value::Bool(true)),
            ("n".to_string(), Value::number(2.5)),
            ("nested".to_string(), Value::Object(Vec::new())),
        ];
        let mut f = FlatMetadata::new();
        f.key(b"category");
        f.string(b"Advertising");
        f.key(b"categories");
        f.list(4);
        f.string(b"A");
        f.number(3.0);
        f.bool(false);
        f.other();
        f.key(b"exempt");
        f.bool(true);
        f.key(b"n");
        f.number(2.5);
        f.key(b"nested");
        f.other();
        assert_eq!(f.to_value(), Some(Value::Object(members)));
        assert_eq!(FlatMetadata::new().to_value(), Some(Value::Object(vec![])));
        // Invalid UTF-8 is read as the host reads it.
        let mut f = FlatMetadata::new();
        f.key(b"category");
        f.string(b"Ad\xffs");
        assert_eq!(
            f.to_value(),
            Some(Value::Object(vec![(
                "category".into(),
                Value::String("Ad\u{fffd}s".into())
            )]))
        );
    }

    #[test]
    fn a_cut_flat_string_is_not_read() {
        let f = flat(&[("category", Value::String("Advertising".into()))]);
        for n in 0..f.bytes.len() {
            let cut = FlatMetadata {
                bytes: f.bytes[..n].to_vec(),
            };
            if n > 0 {
                assert_eq!(cut.to_value(), None, "{n}");
            }
        }
    }

    #[test]
    fn gives_what_parsing_gives_and_remembers_it() {
        let cases = [
            vec![("category", Value::String("Advertising".into()))],
            vec![(
                "categories",
                Value::Array(vec![Value::String("A".into()), Value::String("B".into())]),
            )],
            vec![("exempt", Value::Bool(true))],
            vec![("category", Value::number(5.0))],
            vec![
                ("category", Value::String("A".into())),
                ("typo", Value::Bool(true)),
            ],
            vec![("category", Value::Object(Vec::new()))],
        ];
        let mut memo = RouteMemo::new();
        for round in 0..3 {
            for members in &cases {
                let f = flat(members);
                let value = Value::Object(
                    members
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect(),
                );
                for mode in [Match::All, Match::Any] {
                    let want = RouteSetting::from_value(&value, mode);
                    assert_eq!(memo.setting(&f, mode), want, "{members:?} {mode:?}");
                }
            }
            assert_eq!(memo.len(), cases.len() * 2, "round {round}");
        }
    }

    #[test]
    fn holds_a_bounded_number_of_entries() {
        let mut memo = RouteMemo::new();
        for i in 0..(CAPACITY * 3) {
            let f = flat(&[("category", Value::String(format!("C{i}")))]);
            let got = memo.setting(&f, Match::All);
            let again = memo.setting(&f, Match::All);
            assert_eq!(got, again);
            assert!(memo.len() <= CAPACITY);
        }
        assert_eq!(memo.len(), CAPACITY);
    }
}
