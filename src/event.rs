//! Reading what the decision needs from one Segment event, in a single validating pass: its type,
//! its event name, and its consent for the route's required categories. Nothing else is kept.
//!
//! Destinations do not all read a body alike: Python and Node keep the last of two equal keys,
//! some readers the first, and Go's `encoding/json` matches struct fields case-insensitively
//! (`Context`, `con\u017fent`). On every object the decision reads, a key that any of those
//! readers could take for a field the decision uses must be that field, spelled exactly, once.
//! Anything else makes the event unreadable: it is refused, never resolved one way or the other.

use crate::json::{Invalid, Scanner, Str};

/// The consent an event (or a batch's top-level context) carries for the required categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// No `context.consent` key at all (a batch item then takes the batch's).
    Absent,
    /// `context.consent` is there but has no `categoryPreferences` (e.g. `consent: {}`).
    NoPreferences,
    /// Bit `i` is set when required category `i` is JSON `true`.
    Preferences { consented: u64 },
}

/// A Segment call, as named by an event's `type` or by an endpoint's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Track,
    Identify,
    Page,
    Screen,
    Group,
    Alias,
    /// A `type` that names no Segment call (or is not a string).
    Other,
}

impl Call {
    /// The call a `type` value names (exact, as Segment's API compares it).
    pub fn from_type(value: &str) -> Call {
        match value {
            "track" => Call::Track,
            "identify" => Call::Identify,
            "page" => Call::Page,
            "screen" => Call::Screen,
            "group" => Call::Group,
            "alias" => Call::Alias,
            _ => Call::Other,
        }
    }
}

/// What one event object says, as far as the decision cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFacts {
    pub consent: Consent,
    /// False when the consent or the fields that decide cannot be read unambiguously.
    pub readable: bool,
    /// The call its `type` names, when it has one.
    pub call: Option<Call>,
    /// The track `event` name is in the always-allow list.
    pub allow_listed_name: bool,
    /// The value of a top-level `batch` key is an array (its span: `[` and `]` offsets).
    pub batch: Option<(usize, usize)>,
    /// It has a top-level key that a batch envelope does not carry (see [`BATCH_ENVELOPE`]).
    pub has_event_fields: bool,
}

impl EventFacts {
    /// What an empty body says: nothing at all.
    pub const EMPTY: EventFacts = EventFacts {
        consent: Consent::Absent,
        readable: true,
        call: None,
        allow_listed_name: false,
        batch: None,
        has_event_fields: false,
    };
}

/// The top-level keys Segment's and RudderStack's libraries send beside `batch`. A body with
/// `batch` and any other key could also be read as a single event, so it is refused.
pub const BATCH_ENVELOPE: [&str; 9] = [
    "batch",
    "sentAt",
    "context",
    "integrations",
    "writeKey",
    "metadata",
    "messageId",
    "sequence",
    "timestamp",
];

/// What the scan of one event needs to know.
pub struct Wanted<'w> {
    /// The route's required categories (at most 64).
    pub categories: &'w [String],
    /// Track event names that pass regardless of consent.
    pub always_allow: &'w [String],
}

/// Calls `on_item(scanner, item_start)` for each element of a top-level `batch` array; the
/// callback must consume exactly one value.
pub type ItemVisitor<'v, 'a> = &'v mut dyn FnMut(&mut Scanner<'a>, usize) -> Result<(), Invalid>;

/// How a key relates to the field names a reader of an object looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch {
    /// Exactly `names[i]`.
    Exact(usize),
    /// Not `names[i]`, but some reader takes it for it: Go's case folding, or a reader that
    /// stops at a NUL (`"context\u0000"`).
    Lookalike(usize),
    /// None of the names, for every reader.
    Other,
}

/// Classifies `key` against `names` (ASCII field names).
#[inline(always)]
pub fn match_key(key: &Str, names: &[&str]) -> KeyMatch {
    if !key.is_escaped() {
        let raw = key.raw();
        if let Some(i) = names.iter().position(|n| n.as_bytes() == raw) {
            return KeyMatch::Exact(i);
        }
        if raw.is_ascii() {
            // Most keys: Go's folding is then ASCII case, and a NUL cannot appear unescaped.
            return match names
                .iter()
                .position(|n| raw.eq_ignore_ascii_case(n.as_bytes()))
            {
                Some(i) => KeyMatch::Lookalike(i),
                None => KeyMatch::Other,
            };
        }
        return match std::str::from_utf8(raw) {
            Ok(text) => lookalike(text, names),
            Err(_) => KeyMatch::Other,
        };
    }
    let decoded = key.decode();
    if let Some(i) = names.iter().position(|n| *n == decoded) {
        return KeyMatch::Exact(i);
    }
    lookalike(&decoded, names)
}

#[inline(always)]
fn lookalike(text: &str, names: &[&str]) -> KeyMatch {
    // A reader that stops at NUL sees only what comes before it.
    let text = text.split('\0').next().unwrap_or(text);
    match names.iter().position(|n| go_fold_eq(text, n)) {
        Some(i) => KeyMatch::Lookalike(i),
        None => KeyMatch::Other,
    }
}

/// Whether Go's `encoding/json` would match `key` to the struct field named `name` (ASCII): ASCII
/// letters compare case-insensitively, and Unicode simple folding adds two more: `ſ` (U+017F) is
/// `s` and the Kelvin sign (U+212A) is `k`.
pub fn go_fold_eq(key: &str, name: &str) -> bool {
    // Each name byte needs one key character of one to three bytes.
    if key.len() < name.len() || key.len() > 3 * name.len() {
        return false;
    }
    let mut want = name.bytes();
    for c in key.chars() {
        let Some(n) = want.next() else {
            return false;
        };
        let n = n.to_ascii_lowercase();
        let same = match c {
            '\u{017F}' => n == b's',
            '\u{212A}' => n == b'k',
            c if c.is_ascii() => (c as u8).to_ascii_lowercase() == n,
            _ => false,
        };
        if !same {
            return false;
        }
    }
    want.next().is_none()
}

/// Tracks one field name on one object: the decision may use it only if it is there exactly
/// once, and nothing else on the object could be read as it.
#[derive(Default, Clone, Copy)]
struct Seen(u8);

impl Seen {
    /// Records a key that matched; false when the field is now ambiguous.
    fn add(&mut self) -> bool {
        self.0 = self.0.saturating_add(1);
        self.0 == 1
    }
}

const CONTEXT: usize = 0;
const TYPE: usize = 1;
const EVENT: usize = 2;
const BATCH: usize = 3;
/// The fields of an event object that the decision reads; a batch body's top level adds `batch`.
const EVENT_FIELDS: [&str; 4] = ["context", "type", "event", "batch"];

/// Reads one event object at the cursor. Syntax errors are `Err`; readable-but-ambiguous content
/// is reported through `readable: false` so that a batch can drop just that item and go on.
/// `batch_items`, when given (the body's top level), visits the elements of a `batch` array.
pub fn read_event<'a>(
    s: &mut Scanner<'a>,
    wanted: &Wanted,
    mut batch_items: Option<ItemVisitor<'_, 'a>>,
) -> Result<EventFacts, Invalid> {
    let mut facts = EventFacts::EMPTY;
    let names = if batch_items.is_some() {
        &EVENT_FIELDS[..]
    } else {
        &EVENT_FIELDS[..BATCH]
    };
    let mut seen = [Seen::default(); EVENT_FIELDS.len()];
    let mut event_name: Option<Str<'a>> = None;
    if s.object_start()? {
        loop {
            let key = s.key()?;
            let field = match match_key(&key, names) {
                KeyMatch::Exact(i) => Some(i),
                KeyMatch::Lookalike(_) => {
                    facts.readable = false;
                    None
                }
                KeyMatch::Other => None,
            };
            if let Some(i) = field {
                if let Some(seen) = seen.get_mut(i) {
                    facts.readable &= seen.add();
                }
            }
            // Only a body's top level can be a batch envelope.
            if field.is_none()
                && batch_items.is_some()
                && !BATCH_ENVELOPE.iter().any(|k| key.eq_str(k))
            {
                facts.has_event_fields = true;
            }
            match field {
                Some(CONTEXT) => match read_context(s, wanted.categories)? {
                    Some(consent) => facts.consent = consent,
                    None => facts.readable = false,
                },
                Some(TYPE) => {
                    facts.has_event_fields = true;
                    facts.call = Some(match s.peek_token() {
                        Some(b'"') => Call::from_type(&s.string()?.decode()),
                        _ => {
                            s.skip_value()?;
                            Call::Other
                        }
                    });
                }
                Some(EVENT) => {
                    facts.has_event_fields = true;
                    event_name = match s.peek_token() {
                        Some(b'"') => Some(s.string()?),
                        _ => {
                            s.skip_value()?;
                            None
                        }
                    };
                }
                Some(_) => {
                    facts.batch = match (s.peek_token(), batch_items.as_mut()) {
                        (Some(b'['), Some(visit)) => Some(read_items(s, &mut **visit)?),
                        _ => {
                            // `batch` that is not a list: not a batch anyone could judge.
                            s.skip_value()?;
                            facts.readable = false;
                            None
                        }
                    };
                }
                None => s.skip_value()?,
            }
            if !s.object_more()? {
                break;
            }
        }
    }
    facts.allow_listed_name =
        event_name.is_some_and(|name| wanted.always_allow.iter().any(|a| name.eq_str(a)));
    Ok(facts)
}

fn read_items<'a>(
    s: &mut Scanner<'a>,
    visit: ItemVisitor<'_, 'a>,
) -> Result<(usize, usize), Invalid> {
    s.peek_token();
    let open = s.pos();
    if s.array_start()? {
        loop {
            s.peek_token();
            let start = s.pos();
            visit(s, start)?;
            if !s.array_more()? {
                break;
            }
        }
    }
    // The cursor is just past `]`.
    Ok((open, s.pos().saturating_sub(1)))
}

/// Reads an object in which the decision uses one field, `name`, read by `read_field`.
/// `Ok(None)`: the object is unreadable (not an object, or the field is ambiguous).
fn read_one_field<T>(
    s: &mut Scanner,
    name: &str,
    absent: T,
    mut read_field: impl FnMut(&mut Scanner) -> Result<Option<T>, Invalid>,
) -> Result<Option<T>, Invalid> {
    if s.peek_token() != Some(b'{') {
        s.skip_value()?;
        return Ok(None);
    }
    let mut value = Some(absent);
    let mut seen = Seen::default();
    if s.object_start()? {
        loop {
            let key = s.key()?;
            match match_key(&key, &[name]) {
                KeyMatch::Exact(_) => {
                    let read = read_field(s)?;
                    value = if seen.add() { read } else { None };
                }
                KeyMatch::Lookalike(_) => {
                    s.skip_value()?;
                    value = None;
                    seen.add();
                }
                KeyMatch::Other => s.skip_value()?,
            }
            if !s.object_more()? {
                break;
            }
        }
    }
    Ok(value)
}

/// `Ok(None)`: `context` (or its `consent` / `categoryPreferences`) is there but unreadable.
fn read_context(s: &mut Scanner, categories: &[String]) -> Result<Option<Consent>, Invalid> {
    read_one_field(s, "consent", Consent::Absent, |s| {
        read_one_field(s, "categoryPreferences", Consent::NoPreferences, |s| {
            Ok(
                read_preferences(s, categories)?
                    .map(|consented| Consent::Preferences { consented }),
            )
        })
    })
}

/// The consented bits; `Ok(None)` for a non-object or a required category given twice.
/// Category keys are exact in every reader (they are map keys), so only exact repeats count,
/// and a key that a NUL-stopping reader would read as a required category.
fn read_preferences(s: &mut Scanner, categories: &[String]) -> Result<Option<u64>, Invalid> {
    if s.peek_token() != Some(b'{') {
        s.skip_value()?;
        return Ok(None);
    }
    let mut consented = 0u64;
    let mut seen = 0u64;
    let mut ambiguous = false;
    if s.object_start()? {
        loop {
            let key = s.key()?;
            let (index, exact) = match key.position_in(categories) {
                Some(i) => (Some(i), true),
                None if key.is_escaped() => (nul_prefix_position(&key, categories), false),
                None => (None, false),
            };
            match index {
                Some(i) if i < 64 => {
                    let bit = 1u64 << i;
                    ambiguous |= seen & bit != 0 || !exact;
                    seen |= bit;
                    if s.value_is_true()? && exact {
                        consented |= bit;
                    }
                }
                _ => s.skip_value()?,
            }
            if !s.object_more()? {
                break;
            }
        }
    }
    Ok(if ambiguous { None } else { Some(consented) })
}

/// For an escaped key holding a NUL: the category its text before the NUL names, if any.
fn nul_prefix_position(key: &Str, categories: &[String]) -> Option<usize> {
    let decoded = key.decode();
    let (before, _) = decoded.split_once('\0')?;
    categories.iter().position(|c| c == before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(body: &str, categories: &[&str]) -> Result<EventFacts, Invalid> {
        let categories: Vec<String> = categories.iter().map(|c| c.to_string()).collect();
        let always_allow = vec!["Consent Change".to_string()];
        let wanted = Wanted {
            categories: &categories,
            always_allow: &always_allow,
        };
        let mut s = Scanner::new(body);
        let f = read_event(&mut s, &wanted, None)?;
        assert!(s.at_end());
        Ok(f)
    }

    fn consent(body: &str) -> Option<Consent> {
        let f = facts(body, &["A", "B"]).unwrap();
        f.readable.then_some(f.consent)
    }

    #[test]
    fn reads_consent_bits_for_required_categories_only() {
        let p = |consented| Some(Consent::Preferences { consented });
        assert_eq!(
            consent(
                r#"{"context":{"consent":{"categoryPreferences":{"A":true,"B":false,"C":true}}}}"#
            ),
            p(0b01)
        );
        assert_eq!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{"B":true}}}}"#),
            p(0b10)
        );
        assert_eq!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{}}}}"#),
            p(0)
        );
        assert_eq!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{"A":"true","B":1}}}}"#),
            p(0)
        );
        assert_eq!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{"a":true,"A ":true}}}}"#),
            p(0)
        );
        assert_eq!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{"\u0041":true}}}}"#),
            p(0b01)
        );
        assert_eq!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{"A":{"x":[true]}}}}}"#),
            p(0)
        );
    }

    #[test]
    fn tells_absent_consent_from_consent_without_preferences() {
        assert_eq!(consent(r#"{"type":"track"}"#), Some(Consent::Absent));
        assert_eq!(consent(r#"{"context":{}}"#), Some(Consent::Absent));
        assert_eq!(
            consent(r#"{"context":{"consent":{}}}"#),
            Some(Consent::NoPreferences)
        );
        assert_eq!(
            consent(r#"{"context":{"consent":{"version":2}}}"#),
            Some(Consent::NoPreferences)
        );
    }

    #[test]
    fn anything_readable_two_ways_is_unreadable() {
        for body in [
            r#"{"context":{},"context":{}}"#,
            r#"{"context":{"consent":{},"consent":{}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{},"categoryPreferences":{}}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":false,"A":true}}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":false,"\u0041":true}}}}"#,
            r#"{"type":"track","type":"identify"}"#,
            r#"{"event":"x","event":"y"}"#,
            r#"{"context":null}"#,
            r#"{"context":{"consent":null}}"#,
            r#"{"context":{"consent":{"categoryPreferences":null}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":["A"]}}}"#,
            // Go reads these as the same field.
            r#"{"context":{},"Context":{}}"#,
            r#"{"Context":{"consent":{"categoryPreferences":{"A":true}}}}"#,
            r#"{"context":{"Consent":{}}}"#,
            r#"{"context":{"con\u017fent":{"categoryPreferences":{"A":true}}}}"#,
            "{\"context\":{\"con\u{17f}ent\":{}}}",
            r#"{"context":{"consent":{"categorypreferences":{"A":true}}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{},"CATEGORYPREFERENCES":{}}}}"#,
            r#"{"type":"track","Type":"identify"}"#,
            r#"{"TYPE":"identify"}"#,
            r#"{"event":"x","EVENT":"y"}"#,
            // A reader that stops at NUL reads these as the field.
            r#"{"context\u0000":{}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A\u0000x":true}}}}"#,
        ] {
            assert_eq!(consent(body), None, "{body}");
        }
        // A key no route needs may repeat, in any case: nobody reads it for the decision.
        assert!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{"C":true,"C":false}}}}"#)
                .is_some()
        );
        assert!(consent(r#"{"userId":"a","UserId":"b","context":{"Ip":1,"ip":2}}"#).is_some());
        // Category keys are exact map keys in every reader: another case is another category.
        assert_eq!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{"A":true,"a":false}}}}"#),
            Some(Consent::Preferences { consented: 0b01 })
        );
    }

    #[test]
    fn folds_keys_like_go() {
        assert!(go_fold_eq("Context", "context"));
        assert!(go_fold_eq("CONTEXT", "context"));
        assert!(go_fold_eq("con\u{17f}ent", "consent"));
        assert!(go_fold_eq("\u{212a}ey", "key"));
        assert!(go_fold_eq("BATCH", "batch"));
        assert!(!go_fold_eq("contexts", "context"));
        assert!(!go_fold_eq("contex", "context"));
        assert!(!go_fold_eq("cont\u{0435}xt", "context")); // Cyrillic e: not a fold
        assert!(!go_fold_eq("\u{130}d", "id")); // dotted capital I: not a simple fold of i
        assert!(!go_fold_eq("type_", "type"));
    }

    #[test]
    fn tells_event_fields_from_a_batch_envelope() {
        let top = |body: &str| {
            let wanted = Wanted {
                categories: &[],
                always_allow: &[],
            };
            let mut skip = |s: &mut Scanner, _: usize| s.skip_value();
            read_event(&mut Scanner::new(body), &wanted, Some(&mut skip)).unwrap()
        };
        let f = top(r#"{"batch":[{"userId":"u"}],"sentAt":"x","writeKey":"k","context":{}}"#);
        assert!(!f.has_event_fields);
        for body in [
            r#"{"userId":"u"}"#,
            r#"{"type":"track"}"#,
            r#"{"properties":{}}"#,
            r#"{"SentAt":"x"}"#,
        ] {
            assert!(top(body).has_event_fields, "{body}");
        }
    }

    #[test]
    fn reads_the_call_type() {
        let call = |body: &str| facts(body, &["A"]).unwrap().call;
        assert_eq!(call(r#"{"type":"track"}"#), Some(Call::Track));
        assert_eq!(call(r#"{"type":"identif\u0079"}"#), Some(Call::Identify));
        assert_eq!(call(r#"{"type":"Track"}"#), Some(Call::Other));
        assert_eq!(call(r#"{"type":7}"#), Some(Call::Other));
        assert_eq!(call(r#"{"event":"x"}"#), None);
    }

    #[test]
    fn recognises_allow_listed_names() {
        let f = facts(r#"{"type":"track","event":"Consent Change"}"#, &["A"]).unwrap();
        assert_eq!((f.call, f.allow_listed_name), (Some(Call::Track), true));
        let f = facts(r#"{"event":"Consent Chang\u0065"}"#, &["A"]).unwrap();
        assert_eq!((f.call, f.allow_listed_name), (None, true));
        let f = facts(r#"{"type":"track","event":"consent change"}"#, &["A"]).unwrap();
        assert!(!f.allow_listed_name);
    }

    #[test]
    fn syntax_errors_are_errors() {
        assert!(facts(
            r#"{"context":{"consent":{"categoryPreferences":{"A":tru}}}}"#,
            &["A"]
        )
        .is_err());
        assert!(facts(r#"{"context":"#, &["A"]).is_err());
    }
}
