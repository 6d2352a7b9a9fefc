//! Reference readers for differential checks (native tests and fuzz targets): how receivers other
//! than the filter read a forwarded body. Parsed by serde_json into a tree that keeps every key
//! (repeats and all), then read seven ways: exact keys with the last or the first repeat winning
//! (Python, Node), case-insensitive matching as Go's (and, wider, jsoniter's, Java's, .NET's) with
//! the last winning, a reader whose keys stop at NUL, and a key converter's (camelcase-keys,
//! humps, Django REST's camel-case parser): field names spelled with any separators and case, the
//! last winning; cJSON's lookup; Ruby's Oj in its object mode.
//! The endpoint decides the kind for the Go reader (`/batch`, `/b`, `/import`; `/track`, `/t`,
//! ...); elsewhere, and for every other reader, a `batch` key does.
//!
//! Besides Segment's consent, each reader reads RudderStack's `context.consentManagement` (into
//! rudder-server's Go struct: a field of another type makes the whole object unusable; a batch
//! item's own only, as rudder-server's gateway drops the batch's context) and, on a
//! route that names a destination, the destination's and `All`'s entries in `integrations` (a
//! map: exact keys), for a batch item both merged key by key with the batch's and taken whole.
//! [`read_merged_deeply`] reads a batch's items with the batch's context merged in all the way
//! down, as lodash's `merge` does.

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
    Folding,
    StopsAtNul,
    Converting,
    /// cJSON's `cJSON_GetObjectItem`: every key found without ASCII case, the first that matches.
    IgnoresCase,
    /// Ruby's Oj in its default object mode, read with Rails' indifferent access, or Ruby's
    /// `JSON.load` with its additions (see [`oj`]).
    Oj,
}

pub const READERS: [Reader; 7] = [
    Reader::LastWins,
    Reader::FirstWins,
    Reader::Folding,
    Reader::StopsAtNul,
    Reader::Converting,
    Reader::IgnoresCase,
    Reader::Oj,
];

/// A tree as Ruby's Oj loads it in its object mode (`Oj.load`, its default) and Rails'
/// indifferent access reads it, in document order: `"^#n": [key, value]` sets the entry `key`,
/// a key `:name` (a Symbol) is `name`, and an object whose first key is another `^` directive
/// (`^o`, `^u`, `^c`, `^t`, `^O`, `^i`) is no Hash (absent here); so is one with a `json_class`
/// key, which Ruby's `JSON.load` makes an instance of that class.
fn oj(node: Node) -> Node {
    match node {
        Node::Arr(items) => Node::Arr(items.into_iter().map(oj).collect()),
        Node::Obj(members) => {
            let directive = |k: &str| k.starts_with('^') && !k.starts_with("^#") && k.len() > 1;
            if members.first().is_some_and(|(k, _)| directive(k))
                || members.iter().any(|(k, _)| k == "json_class")
            {
                return Node::Null;
            }
            let mut out: Vec<(String, Node)> = Vec::new();
            let mut set = |k: String, v: Node| {
                out.retain(|(seen, _)| *seen != k);
                out.push((k, v));
            };
            for (k, v) in members {
                match (k.strip_prefix("^#"), v) {
                    (Some(rest), Node::Arr(pair)) if !rest.is_empty() && pair.len() == 2 => {
                        let mut pair = pair.into_iter();
                        if let (Some(Node::Str(key)), Some(value)) = (pair.next(), pair.next()) {
                            set(key, oj(value));
                        }
                    }
                    (_, v) => {
                        let k = k.strip_prefix(':').map(str::to_string).unwrap_or(k);
                        set(k, oj(v));
                    }
                }
            }
            Node::Obj(out)
        }
        other => other,
    }
}

/// Case-insensitive field matching for an ASCII field name: Go's `encoding/json` (written from
/// the Go source, not shared with the filter's own code: ASCII case, `ſ` and the Kelvin sign),
/// widened with `ı` and `İ`, which other case-insensitive readers fold onto `i` (jsoniter, which
/// rudder-server has read consent with, through Go's `strings.ToLower`; Java's
/// `equalsIgnoreCase`; .NET's `OrdinalIgnoreCase`).
fn folding_matches(key: &str, name: &str) -> bool {
    if key == name {
        return true;
    }
    let folded: String = key
        .chars()
        .map(|c| match c {
            '\u{017F}' => 's',
            '\u{212A}' => 'k',
            '\u{0131}' | '\u{0130}' => 'i',
            c if c.is_ascii() => c.to_ascii_lowercase(),
            _ => '\u{FFFD}',
        })
        .collect();
    folded == name.to_ascii_lowercase()
}

/// A key converter's matching for an ASCII field name (change-case's: any character that is not
/// a Unicode letter or digit separates words): `category_preferences`, `category-preferences`,
/// `category\u{a0}preferences` and `CATEGORY_PREFERENCES` all become `categoryPreferences`,
/// `type_` becomes `type` (case ignored as Go's folding does).
fn converting_matches(key: &str, name: &str) -> bool {
    let letters = |t: &str| -> String { t.chars().filter(|c| c.is_alphanumeric()).collect() };
    folding_matches(&letters(key), &letters(name))
}

impl Reader {
    fn matches(self, key: &str, name: &str) -> bool {
        match self {
            Reader::LastWins | Reader::FirstWins | Reader::Oj => key == name,
            Reader::Folding => folding_matches(key, name),
            Reader::StopsAtNul => key.split('\0').next() == Some(name),
            Reader::Converting => converting_matches(key, name),
            Reader::IgnoresCase => key.eq_ignore_ascii_case(name),
        }
    }

    /// How this reader matches map keys (destination names): exactly, except that a reader
    /// stopping at NUL stops there too, and cJSON's `cJSON_GetObjectItem` finds every key
    /// without ASCII case.
    fn for_map_keys(self) -> Reader {
        match self {
            Reader::Folding | Reader::Converting => Reader::LastWins,
            r => r,
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
            Reader::FirstWins | Reader::IgnoresCase => hits.next(),
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
    /// RudderStack's: None, no `consentManagement`; Some(None), none usable (no deny list, or a
    /// field of the wrong type).
    pub rudder: Option<Option<RudderReading>>,
    /// On a route with a destination: (its entry, `All`) under each reading of the merge.
    pub integrations: Vec<(Option<Kind>, Option<Kind>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RudderReading {
    /// Per route category: it is in `deniedConsentIds` (as written, or once rudder-server has
    /// trimmed the IDs' white space).
    pub denied: Vec<bool>,
    /// Where `allowedConsentIds` lists an ID (once trimmed, not empty): per route category, it
    /// is listed. rudder-server's allow-list release then decides by it alone; earlier ones
    /// ignore it.
    pub allowed: Option<Vec<bool>>,
    pub provider: Option<String>,
    pub strategy: Option<String>,
}

/// The kind of an `integrations` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool(bool),
    Object,
    Other,
}

/// What the route asks of a reader: which consent shapes (those the `consent_format` reads), and
/// `integrations` for its destination.
pub struct Route<'r> {
    pub categories: &'r [String],
    pub segment: bool,
    pub rudder: bool,
    pub destination: Option<&'r str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub batch: bool,
    pub items: Vec<ItemReading>,
}

/// Whether `reader` reads the body as the first reader does. A reader that finds category keys
/// without case takes a lone `"advertising": true` for the `Advertising` consent the filter does
/// not count (category keys count only exactly): it may read more consent than the others,
/// never less.
pub fn reads_alike(reader: Reader, reading: &Option<Reading>, first: &Option<Reading>) -> bool {
    let folds_categories = matches!(
        reader,
        Reader::IgnoresCase | Reader::Folding | Reader::Converting
    );
    let (true, Some(reading), Some(first)) = (folds_categories, reading, first) else {
        return reading == first;
    };
    let without_consent = |i: &ItemReading| ItemReading {
        consent: None,
        ..i.clone()
    };
    reading.batch == first.batch
        && reading.items.len() == first.items.len()
        && reading
            .items
            .iter()
            .zip(&first.items)
            .all(|(mine, theirs)| {
                let at_least = match (&mine.consent, &theirs.consent) {
                    (Some(Some(mine)), Some(Some(theirs))) => {
                        mine.len() == theirs.len()
                            && mine.iter().zip(theirs).all(|(m, t)| *m || !*t)
                    }
                    (mine, theirs) => mine == theirs,
                };
                at_least && without_consent(mine) == without_consent(theirs)
            })
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

fn rudder_of(r: Reader, event: &Node) -> Option<&Node> {
    r.get(event, "context")
        .and_then(|c| r.get(c, "consentManagement"))
}

/// A string value as this reader compares it (a NUL-stopping reader cuts it).
fn text(r: Reader, n: &Node) -> Option<String> {
    match n {
        Node::Str(s) if r == Reader::StopsAtNul => s.split('\0').next().map(str::to_string),
        Node::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn rudder(r: Reader, cm: &Node, categories: &[String]) -> Option<RudderReading> {
    let Node::Obj(_) = cm else { return None };
    let strings = |name: &str| -> Result<Option<String>, ()> {
        match r.get(cm, name) {
            None => Ok(None),
            Some(n) => text(r, n).map(Some).ok_or(()),
        }
    };
    let provider = strings("provider").ok()?;
    let strategy = strings("resolutionStrategy").ok()?;
    let trimmed = |ids: &[String]| -> Vec<String> {
        ids.iter()
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .collect()
    };
    let denied: Option<Vec<String>> = match r.get(cm, "deniedConsentIds") {
        None => None,
        Some(Node::Arr(ids)) => Some(ids.iter().map(|n| text(r, n)).collect::<Option<_>>()?),
        Some(_) => return None,
    };
    // An array of IDs, or (older OneTrust builds) an object keyed by ID.
    let allowed: Vec<String> = match r.get(cm, "allowedConsentIds") {
        None => Vec::new(),
        Some(Node::Arr(ids)) => ids.iter().map(|n| text(r, n)).collect::<Option<_>>()?,
        Some(Node::Obj(members)) => members.iter().map(|(k, _)| k.clone()).collect(),
        Some(_) => return None,
    };
    let allowed = trimmed(&allowed);
    if denied.is_none() && allowed.is_empty() {
        return None;
    }
    let denied = denied.unwrap_or_default();
    let denied_trimmed = trimmed(&denied);
    Some(RudderReading {
        denied: categories
            .iter()
            .map(|c| denied.contains(c) || denied_trimmed.contains(c))
            .collect(),
        allowed: (!allowed.is_empty())
            .then(|| categories.iter().map(|c| allowed.contains(c)).collect()),
        provider,
        strategy,
    })
}

fn kind(n: Option<&Node>) -> Option<Kind> {
    n.map(|n| match n {
        Node::Bool(b) => Kind::Bool(*b),
        Node::Obj(_) => Kind::Object,
        _ => Kind::Other,
    })
}

/// (the destination's entry, `All`) in an `integrations` value; a non-object holds neither but
/// is itself `Other`.
fn entries(r: Reader, integrations: &Node, destination: &str) -> (Option<Kind>, Option<Kind>) {
    if !matches!(integrations, Node::Obj(_)) {
        return (Some(Kind::Other), Some(Kind::Other));
    }
    // Destination names are map keys: exact, except to a reader that stops at NUL.
    let keys = r.for_map_keys();
    (
        kind(keys.get(integrations, destination)),
        kind(keys.get(integrations, "All")),
    )
}

fn item(r: Reader, event: &Node, top: Option<&Node>, route: &Route) -> ItemReading {
    let categories = route.categories;
    let inherited = top.and_then(|t| consent_of(r, t));
    let mut integrations = Vec::new();
    if let Some(destination) = route.destination {
        let mine = r.get(event, "integrations");
        let batch = top.and_then(|t| r.get(t, "integrations"));
        let mine_e = mine.map(|n| entries(r, n, destination));
        let batch_e = batch.map(|n| entries(r, n, destination));
        // Taken whole: the item's object, or else the batch's.
        integrations.push(mine_e.or(batch_e).unwrap_or((None, None)));
        if top.is_some() {
            // Merged key by key, the item's keys first.
            let (m, b) = (
                mine_e.unwrap_or((None, None)),
                batch_e.unwrap_or((None, None)),
            );
            integrations.push((m.0.or(b.0), m.1.or(b.1)));
        }
    }
    // rudder-server's gateway stores each batch item alone, without the batch's context.
    let rudder = rudder_of(r, event)
        .filter(|_| route.rudder)
        .map(|cm| rudder(r, cm, categories));
    let consent = consent_of(r, event)
        .or(inherited)
        .filter(|_| route.segment)
        .map(|c| {
            // Category keys as each reader finds its fields: exactly, up to a NUL, without
            // ASCII case and taking the first (cJSON), folded (Go's `encoding/json` and Jackson,
            // where the categories are a struct's fields), converted (a key converter).
            r.get(c, "categoryPreferences").map(|prefs| {
                categories
                    .iter()
                    .map(|cat| r.get(prefs, cat) == Some(&Node::Bool(true)))
                    .collect()
            })
        });
    ItemReading {
        call: string(r.get(event, "type")),
        event: string(r.get(event, "event")),
        consent,
        rudder,
        integrations,
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
pub fn read(reader: Reader, path: &str, body: &[u8], route: &Route) -> Option<Reading> {
    let root: Node = serde_json::from_slice(body).ok()?;
    let root = match reader {
        Reader::Oj => oj(root),
        _ => root,
    };
    let by_body = matches!(reader.get(&root, "batch"), Some(Node::Arr(_)));
    let batch = match reader {
        Reader::Folding => endpoint_is_batch(path).unwrap_or(by_body),
        _ => by_body,
    };
    let items = if batch {
        match reader.get(&root, "batch") {
            Some(Node::Arr(items)) => items
                .iter()
                .map(|e| item(reader, e, Some(&root), route))
                .collect(),
            _ => Vec::new(),
        }
    } else {
        vec![item(reader, &root, None, route)]
    };
    Some(Reading { batch, items })
}

/// A batch's items as a JavaScript receiver reads them that merges the batch's `context` into
/// each item's all the way down (lodash's `merge(batch.context, item.context)`: objects key by
/// key, lists element by element, the item's values winning), for their consent only (None: not
/// a batch, or not JSON).
pub fn read_merged_deeply(body: &[u8], route: &Route) -> Option<Vec<ItemReading>> {
    let r = Reader::LastWins;
    let root: Node = serde_json::from_slice(body).ok()?;
    let Some(Node::Arr(items)) = r.get(&root, "batch") else {
        return None;
    };
    let top = r.get(&root, "context");
    let read = |e: &Node| {
        let merged = match (e, top) {
            (Node::Obj(members), Some(top)) => {
                let context = match r.get(e, "context") {
                    Some(own) => lodash_merge(top, own),
                    None => lodash_merge(&Node::Null, top),
                };
                let mut members: Vec<(String, Node)> = members
                    .iter()
                    .filter(|(k, _)| k != "context")
                    .cloned()
                    .collect();
                members.push(("context".to_string(), context));
                Node::Obj(members)
            }
            _ => e.clone(),
        };
        ItemReading {
            integrations: Vec::new(),
            ..item(r, &merged, None, route)
        }
    };
    Some(items.iter().map(read).collect())
}

/// lodash's `merge` of `src` into (a copy of) `dst`, on parsed JSON (each object's keys made
/// unique, the last repeat winning, as `JSON.parse` makes them).
fn lodash_merge(dst: &Node, src: &Node) -> Node {
    let unique = |members: &[(String, Node)]| {
        let mut out: Vec<(String, Node)> = Vec::new();
        for (k, v) in members {
            out.retain(|(seen, _)| seen != k);
            out.push((k.clone(), v.clone()));
        }
        out
    };
    match (dst, src) {
        (Node::Obj(d), Node::Obj(s)) => {
            let mut out = unique(d);
            for (k, v) in unique(s) {
                match out.iter_mut().find(|(seen, _)| *seen == k) {
                    Some((_, old)) => *old = lodash_merge(old, &v),
                    None => out.push((k, lodash_merge(&Node::Null, &v))),
                }
            }
            Node::Obj(out)
        }
        (Node::Arr(d), Node::Arr(s)) => Node::Arr(
            (0..d.len().max(s.len()))
                .map(|i| match (d.get(i), s.get(i)) {
                    (Some(d), Some(s)) => lodash_merge(d, s),
                    (None, Some(s)) => lodash_merge(&Node::Null, s),
                    (d, None) => d.cloned().unwrap_or(Node::Null),
                })
                .collect(),
        ),
        (_, Node::Obj(s)) => lodash_merge(&Node::Obj(Vec::new()), &Node::Obj(s.clone())),
        (_, src) => src.clone(),
    }
}

/// Whether an item, as one reader reads it, may reach the route's destination: the consent the
/// format reads (an event with both shapes under `auto` may not), less what `Sec-GPC: 1`
/// withdraws, combined as the route (or RudderStack's strategy) says; an allow-listed `track`
/// call passes consent; then every reading of `integrations` must leave the destination on.
pub struct Judge<'j> {
    /// "segment", "rudderstack" or "auto".
    pub format: &'j str,
    pub missing_allowed: bool,
    pub match_any: bool,
    /// Per route category: withdrawn by the request's GPC signal.
    pub withdrawn: Vec<bool>,
    pub allow_listed: &'j [String],
    /// The endpoint lets an allow-listed `track` call pass (it names no call, `track`, a batch).
    pub track_endpoint: bool,
}

impl Judge<'_> {
    pub fn allows(&self, item: &ItemReading) -> bool {
        // Segment's consent change passes; rudder-server has no such events.
        let listed = item.call.as_deref() == Some("track")
            && self.track_endpoint
            && !self.uses_rudder(item)
            && item
                .event
                .as_ref()
                .is_some_and(|e| self.allow_listed.contains(e));
        if !listed && !self.consents(item) {
            return false;
        }
        item.integrations.iter().all(|(dest, all)| match dest {
            Some(Kind::Bool(true) | Kind::Object) => true,
            Some(_) => false,
            None => matches!(all, None | Some(Kind::Bool(true) | Kind::Object)),
        })
    }

    /// Whether the format reads the item's RudderStack shape (`auto`: when it has one).
    fn uses_rudder(&self, item: &ItemReading) -> bool {
        match self.format {
            "segment" => false,
            "rudderstack" => true,
            _ => item.rudder.is_some(),
        }
    }

    fn consents(&self, item: &ItemReading) -> bool {
        let segment = item.consent.as_ref();
        let rudder = item.rudder.as_ref();
        if self.format == "auto" && segment.is_some() && rudder.is_some() {
            return false;
        }
        let use_rudder = self.uses_rudder(item);
        let n = self.withdrawn.len();
        let (bits, any): (Vec<bool>, bool) = match (use_rudder, segment, rudder) {
            (false, Some(Some(bits)), _) => (bits.clone(), self.match_any),
            // Both of rudder-server's readings must let it go: the denied IDs (every release),
            // the allowed ones where listed (its allow-list release).
            (true, _, Some(Some(r))) => (
                r.denied
                    .iter()
                    .enumerate()
                    .map(|(i, d)| !d && r.allowed.as_ref().is_none_or(|a| a[i]))
                    .collect(),
                // rudder-server: `custom` takes the destination's strategy; no provider, `""`
                // or `oneTrust` the older OneTrust setting's (`and`); any other the event's.
                match r.provider.as_deref() {
                    Some("custom") => self.match_any,
                    None | Some("" | "oneTrust") => false,
                    Some(_) => r.strategy.as_deref() == Some("or"),
                },
            ),
            _ if self.missing_allowed => (vec![true; n], self.match_any),
            _ => return false,
        };
        let mut bits = bits.iter().zip(&self.withdrawn).map(|(b, w)| *b && !w);
        if any {
            bits.any(|b| b)
        } else {
            bits.all(|b| b)
        }
    }
}
