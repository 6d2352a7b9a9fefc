//! Reference readers for differential checks (native tests and fuzz targets): how receivers other
//! than the filter read a forwarded body. Parsed by serde_json into a tree that keeps every key
//! (repeats and all), then read four ways: exact keys with the last or the first repeat winning
//! (Python, Node), Go's case folding with the last winning, and a reader whose keys stop at NUL.
//! The endpoint decides the kind for the Go reader (`/batch`, `/b`, `/import`; `/track`, `/t`,
//! ...); elsewhere, and for every other reader, a `batch` key does.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Number,
    Str(String),
    Arr(Vec<Node>),
    Obj(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
                Ok(Node::Bool(b))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Number)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Number)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Number)
            }
            fn visit_str<E>(self, s: &str) -> Result<Node, E> {
                Ok(Node::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Node, E> {
                Ok(Node::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some(n) = a.next_element()? {
                    v.push(n);
                }
                Ok(Node::Arr(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some((k, n)) = a.next_entry::<String, Node>()? {
                    v.push((k, n));
                }
                Ok(Node::Obj(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    LastWins,
    FirstWins,
    GoFold,
    StopsAtNul,
}

pub const READERS: [Reader; 4] = [
    Reader::LastWins,
    Reader::FirstWins,
    Reader::GoFold,
    Reader::StopsAtNul,
];

/// Go's `encoding/json` field matching for an ASCII field name (written from the Go source, not
/// shared with the filter's own code).
fn go_matches(key: &str, name: &str) -> bool {
    if key == name {
        return true;
    }
    let folded: String = key
        .chars()
        .map(|c| match c {
            '\u{017F}' => 's',
            '\u{212A}' => 'k',
            c if c.is_ascii() => c.to_ascii_lowercase(),
            _ => '\u{FFFD}',
        })
        .collect();
    folded == name.to_ascii_lowercase()
}

impl Reader {
    fn matches(self, key: &str, name: &str) -> bool {
        match self {
            Reader::LastWins | Reader::FirstWins => key == name,
            Reader::GoFold => go_matches(key, name),
            Reader::StopsAtNul => key.split('\0').next() == Some(name),
        }
    }

    /// The value this reader takes for `name` in `obj`, if any.
    pub fn get<'n>(self, obj: &'n Node, name: &str) -> Option<&'n Node> {
        let Node::Obj(members) = obj else { return None };
        let mut hits = members
            .iter()
            .filter(|(k, _)| self.matches(k, name))
            .map(|(_, v)| v);
        let found = match self {
            Reader::FirstWins => hits.next(),
            _ => hits.next_back(),
        };
        // `null` reads as absent everywhere.
        found.filter(|v| **v != Node::Null)
    }
}

/// What one reader makes of one event: its type, its event name, and its consent for the
/// route's categories (None: no consent object; Some(None): consent without preferences).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemReading {
    pub call: Option<String>,
    pub event: Option<String>,
    pub consent: Option<Option<Vec<bool>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub batch: bool,
    pub items: Vec<ItemReading>,
}

fn string(n: Option<&Node>) -> Option<String> {
    match n {
        Some(Node::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

fn consent_of(r: Reader, event: &Node) -> Option<&Node> {
    r.get(event, "context").and_then(|c| r.get(c, "consent"))
}

fn item(r: Reader, event: &Node, inherited: Option<&Node>, categories: &[String]) -> ItemReading {
    let consent = consent_of(r, event).or(inherited).map(|c| {
        // Category keys are exact map keys in every reader except one that stops at NUL.
        r.get(c, "categoryPreferences").map(|prefs| {
            categories
                .iter()
                .map(|cat| {
                    let key_reader = if r == Reader::GoFold {
                        Reader::LastWins
                    } else {
                        r
                    };
                    key_reader.get(prefs, cat) == Some(&Node::Bool(true))
                })
                .collect()
        })
    });
    ItemReading {
        call: string(r.get(event, "type")),
        event: string(r.get(event, "event")),
        consent,
    }
}

/// The last path segment's kind for an endpoint-trusting reader: Some(true) batch, Some(false)
/// single event, None when the path names nothing.
fn endpoint_is_batch(path: &str) -> Option<bool> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    match last {
        "batch" | "b" | "import" => Some(true),
        "track" | "t" | "identify" | "i" | "page" | "p" | "screen" | "s" | "group" | "g"
        | "alias" | "a" => Some(false),
        _ => None,
    }
}

/// `body` (decompressed) as `reader` reads it; None when it is not JSON at all.
pub fn read(reader: Reader, path: &str, body: &[u8], categories: &[String]) -> Option<Reading> {
    let root: Node = serde_json::from_slice(body).ok()?;
    let by_body = matches!(reader.get(&root, "batch"), Some(Node::Arr(_)));
    let batch = match reader {
        Reader::GoFold => endpoint_is_batch(path).unwrap_or(by_body),
        _ => by_body,
    };
    let items = if batch {
        let inherited = consent_of(reader, &root);
        match reader.get(&root, "batch") {
            Some(Node::Arr(items)) => items
                .iter()
                .map(|e| item(reader, e, inherited, categories))
                .collect(),
            _ => Vec::new(),
        }
    } else {
        vec![item(reader, &root, None, categories)]
    };
    Some(Reading { batch, items })
}
