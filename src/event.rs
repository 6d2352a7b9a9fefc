//! Reading what the decision needs from one Segment event, in a single validating pass: its type,
//! its event name, and its consent for the route's required categories. Nothing else is kept.
//!
//! Destinations do not all read a body alike: Python and Node keep the last of two equal keys,
//! some readers the first, and Go's `encoding/json` matches struct fields case-insensitively
//! (`Context`, `con\u017fent`). On every object the decision reads, a key that any of those
//! readers could take for a field the decision uses must be that field, spelled exactly, once.
//! Anything else makes the event unreadable: it is refused, never resolved one way or the other.

use std::cmp::Ordering;

use crate::json::{same_bytes, Invalid, Scanner, Str};

/// The consent an event (or a batch's top-level context) carries for the required categories,
/// in one of the two shapes: Segment's `context.consent.categoryPreferences`, RudderStack's
/// `context.consentManagement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// No `context.consent` (or `context.consentManagement`) key at all (a batch item then takes
    /// the batch's).
    Absent,
    /// The key is there but states nothing the decision uses: `consent` without
    /// `categoryPreferences` (e.g. `consent: {}`), `consentManagement` without
    /// `deniedConsentIds` and with no ID in `allowedConsentIds`.
    NoPreferences,
    /// Segment: bit `i` of `consented` is set when required category `i` is JSON `true`; of
    /// `respelled`, when the object also holds another spelling of it (with the same answer, or
    /// it would be unreadable): merged with another object's keys, readers may take either.
    Preferences { consented: u64, respelled: u64 },
    /// RudderStack: bit `i` of `denied` is set when required category `i` is in
    /// `deniedConsentIds`; `allowed` is `Some` when `allowedConsentIds` lists an ID (rudder-server
    /// since its allow-list release then decides by it alone), bit `i` set when it lists
    /// required category `i` exactly.
    Denied {
        denied: u64,
        allowed: Option<u64>,
        strategy: Strategy,
    },
}

/// How RudderStack combines a destination's consent IDs (`resolutionStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `"or"`: dropped only if every required ID is denied.
    Or,
    /// `"and"`, absent, or anything else: dropped if any required ID is denied.
    And,
    /// `provider: "custom"`: RudderStack takes the strategy from the destination's settings,
    /// here the route's `match`.
    Route,
}

/// Where an event says consent; the plugin's `consent_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentFormat {
    /// `context.consent.categoryPreferences` only.
    Segment,
    /// `context.consentManagement` only.
    Rudderstack,
    /// Either; an event that carries both is refused.
    Auto,
}

/// What an event's `integrations` object says about the route's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Integrations {
    /// The event has an `integrations` object.
    pub present: bool,
    /// `integrations.<destination>`: `false` is off; `true`, or an object of options, is on.
    pub destination: Option<bool>,
    /// `integrations.All`.
    pub all: Option<bool>,
}

impl Integrations {
    /// Segment's rule: off when the destination is `false`, or when it is not named and `All`
    /// is `false` or the destination is one that is off unless named (`off_unless_named`, see
    /// [`crate::policy::RoutePolicy::off_unless_named`]).
    pub fn turns_off(self, off_unless_named: bool) -> bool {
        match self.destination {
            Some(on) => !on,
            None => off_unless_named || self.all == Some(false),
        }
    }

    /// A batch item's object with the batch's merged in, key by key (the item's keys win).
    pub fn merged(self, top: Integrations) -> Integrations {
        Integrations {
            present: self.present || top.present,
            destination: self.destination.or(top.destination),
            all: self.all.or(top.all),
        }
    }
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
        Call::from_text(value.as_bytes())
    }

    /// [`Call::from_type`] on the text's bytes.
    fn from_text(value: &[u8]) -> Call {
        match value {
            b"track" => Call::Track,
            b"identify" => Call::Identify,
            b"page" => Call::Page,
            b"screen" => Call::Screen,
            b"group" => Call::Group,
            b"alias" => Call::Alias,
            _ => Call::Other,
        }
    }
}

/// What one event object says, as far as the decision cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFacts {
    /// Segment's shape (read unless the format is `rudderstack`).
    pub consent: Consent,
    /// RudderStack's shape (read unless the format is `segment`).
    pub rudder: Consent,
    /// Read only on routes that name a destination.
    pub integrations: Integrations,
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
        rudder: Consent::Absent,
        integrations: Integrations {
            present: false,
            destination: None,
            all: None,
        },
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
    /// Where consent is read.
    pub format: ConsentFormat,
    /// The route's destination, whose entry in `integrations` is read.
    pub destination: Option<&'w str>,
    /// Every category is ASCII letters and digits alone (see [`plain_names`]).
    pub plain_categories: bool,
    /// The categories' jsoniter hashes, in the same order (see [`jsoniter_hashes`]).
    pub category_hashes: &'w [[u64; 2]],
    /// None of them is a [`usual_category`]'s.
    pub usual_names_hashed_apart: bool,
}

/// Whether every name is ASCII letters and digits alone (most category names are): their other
/// spellings are then told quickly.
pub fn plain_names(names: &[String]) -> bool {
    names
        .iter()
        .all(|c| c.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Calls `on_item(scanner, item_start)` for each element of a top-level `batch` array; the
/// callback must consume exactly one value.
pub type ItemVisitor<'v, 'a> = &'v mut dyn FnMut(&mut Scanner<'a>, usize) -> Result<(), Invalid>;

/// How a key relates to the field names a reader of an object looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMatch {
    /// Exactly `names[i]`.
    Exact(usize),
    /// Not one of the names, but some reader takes it for one: case-insensitive matching (see
    /// [`folds_to`]), jsoniter's matching by hash (see [`jsoniter_hashes`]), a reader that stops
    /// at a NUL (`"context\u0000"`), or a key that makes a reader read the object otherwise
    /// (see [`directive`]).
    Lookalike,
    /// None of the names, for every reader.
    Other,
    /// [`KeyMatch::Other`], for a key a loader may transliterate (see [`transliterable`]): one
    /// of its characters may be written as many letters (see [`may_flatten`]).
    OtherTransliterable,
}

impl KeyMatch {
    /// Whether no reader takes the key for one of the names.
    pub fn is_other(self) -> bool {
        matches!(self, KeyMatch::Other | KeyMatch::OtherTransliterable)
    }
}

/// Whether a reader makes an object holding `key` (decoded) something other than the plain map
/// of its keys, whatever they say. Each seen doing so with the real library:
/// - `__proto__`: a JavaScript copy of the object (`Object.assign`, `for…in`) takes its members
///   for the object's own;
/// - a key starting with `^`: Ruby's Oj, in its default object mode (`Oj.load`), reads a
///   directive (`"^#1": [key, value]` sets the entry `key`, after the real one too; `"^o"` first
///   makes the object an instance of a class);
/// - `json_class`: Ruby's `JSON.load` (additions on by default) makes the object an instance of
///   the class it names (`"String"`);
/// - a key starting with `$` or `@`: JSON reference and object-graph readers replace the object
///   with the one it points at (`$ref`: Python's jsonref, npm's json-refs, Crockford's cycle.js;
///   `@ref`: JSOG);
/// - a key starting with `py/`, and `__instance_type__`: Python's jsonpickle and json_tricks
///   rebuild another object from it; with `keys=True` (its coming default), jsonpickle reads a
///   key `json://"type"` as `type`, and it wins over the plain key wherever it stands.
#[inline(always)]
fn directive(key: &[u8]) -> bool {
    matches!(key.first(), Some(b'^' | b'$' | b'@'))
        || key.starts_with(b"py/")
        || key.starts_with(b"json://")
        || key == b"__proto__"
        || key == b"json_class"
        || key == b"__instance_type__"
}

/// [`directive`] for a key as scanned.
// Inline natively (a call per key showed in the profile); one copy in the wasm module.
#[cfg_attr(not(target_arch = "wasm32"), inline(always))]
fn directive_key(key: &Str) -> bool {
    match key.is_escaped() {
        true => directive(key.decode().as_bytes()),
        false => directive(key.raw()),
    }
}

/// Classifies `key` against `names`.
#[inline(always)]
pub fn match_key(key: &Str, names: &[Name]) -> KeyMatch {
    if !key.is_escaped() {
        let raw = key.raw();
        if !raw.iter().any(u8::is_ascii_alphanumeric) && raw.is_ascii() {
            return KeyMatch::Lookalike; // see [`nameless`]
        }
        if let Some(i) = names
            .iter()
            .position(|n| same_bytes(n.text.as_bytes(), raw))
        {
            return KeyMatch::Exact(i);
        }
        let folds = |raw: &[u8]| {
            names
                .iter()
                .any(|n| raw.eq_ignore_ascii_case(n.text.as_bytes()))
        };
        // The commonest keys first: ASCII, so only case folding can take them for a name.
        if common_key(raw) {
            return match folds(raw) {
                true => KeyMatch::Lookalike,
                false => KeyMatch::Other,
            };
        }
        if raw.is_ascii() {
            // Most keys: Go's folding is then ASCII case, and a NUL cannot appear unescaped.
            let taken = folds(raw) || directive(raw) || read_as_a_name(raw, names);
            return match taken {
                true => KeyMatch::Lookalike,
                false if raw.iter().any(|&b| writes_a_word(b)) => KeyMatch::OtherTransliterable,
                false => KeyMatch::Other,
            };
        }
        return match std::str::from_utf8(raw) {
            Ok(text) => lookalike(text, names),
            Err(_) => KeyMatch::Other,
        };
    }
    let decoded = key.decode();
    if let Some(i) = names.iter().position(|n| n.text == decoded) {
        return KeyMatch::Exact(i);
    }
    if names.iter().any(|n| goccy_prefix(key, &decoded, n.text)) {
        return KeyMatch::Lookalike;
    }
    lookalike(&decoded, names)
}

/// The rarer keys (escaped, or not ASCII).
#[inline(never)]
fn lookalike(text: &str, names: &[Name]) -> KeyMatch {
    if directive(text.as_bytes()) || jsoniter_takes(text.as_bytes(), names) || nameless(text) {
        return KeyMatch::Lookalike;
    }
    // A reader that stops at NUL sees only what comes before it; a key converter drops the NUL
    // with the other characters that are not letters or digits.
    let before_nul = text.split('\0').next().unwrap_or(text);
    let whole = Spellings::of(text);
    let cut = (before_nul.len() < text.len()).then(|| Spellings::of(before_nul));
    match names.iter().any(|n| {
        folds_to(before_nul, n.text)
            || whole.spell(n.text)
            || cut.as_ref().is_some_and(|c| c.spell(n.text))
    }) {
        true => KeyMatch::Lookalike,
        false if transliterable(text) => KeyMatch::OtherTransliterable,
        false => KeyMatch::Other,
    }
}

/// What names a key spells to a key converter or binding layer, or is a path to for a path
/// getter. Converters and binders map other spellings onto a field: Django REST's
/// camel-case parser, humps, camelcase-keys, change-case and lodash's `camelCase` turn
/// `category_preferences`, `category\u{a0}preferences` and `type_` into `categoryPreferences` and
/// `type` (the last spelling wins), pydantic's `populate_by_name`, marshmallow and Jackson's
/// `@JsonAlias` take both. lodash's `_.get(event, "context.consent…")` reads a key spelled as the
/// whole path before the nested field, and `_.set` builds the path from such a key. So: the
/// key's [`spelling`], or that of its first path segment, is the name in any case. Worked out
/// once per key, then compared with each name.
pub struct Spellings {
    whole: String,
    first_segment: String,
    /// The key as dlt spells it (see [`reduced`]), when that differs.
    reduced: Option<String>,
    /// A key a loader may transliterate, as written, for [`transliterates_to`].
    transliterable: Option<String>,
    /// The key as the Singer SDK abbreviates it (see [`abbreviated`]).
    abbreviated: Option<String>,
}

impl Spellings {
    #[inline(never)] // rare keys only: one copy for its callers
    pub fn of(key: &str) -> Spellings {
        Spellings {
            whole: spelling(key),
            first_segment: spelling(&first_segment(key)),
            reduced: reduced(key).map(|r| spelling(&r)),
            transliterable: transliterable(key).then(|| key.to_string()),
            abbreviated: abbreviated(key),
        }
    }

    /// Whether the key spells `name`.
    pub fn spell(&self, name: &str) -> bool {
        self.whole.eq_ignore_ascii_case(name)
            || self.first_segment.eq_ignore_ascii_case(name)
            || self
                .reduced
                .as_ref()
                .is_some_and(|r| r.eq_ignore_ascii_case(name))
            || self
                .abbreviated
                .as_ref()
                .is_some_and(|a| abbreviation_names(a, name))
            || self
                .transliterable
                .as_ref()
                .is_some_and(|key| transliterates_to_name(key, name))
    }
}

/// The key as warehouse loaders' SQL naming writes its column: dlt writes `+` and `*` as `x`,
/// `@` as `a` and `|` as `l` before snake-casing (`conte+t` is `context`, `An@lytics`
/// `analytics`), and the Singer SDK's SQL sinks write a leading digit as the letter of its
/// value (`0` as `a`, … `9` as `j`: `2ontext` is `context`, `8ntegrations` `integrations`);
/// `None` for a key without them (most keys), which it spells as key converters do.
fn reduced(key: &str) -> Option<String> {
    let bytes = key.as_bytes();
    if !bytes.iter().any(|b| matches!(b, b'+' | b'*' | b'@' | b'|')) && !leading_digit(bytes) {
        return None;
    }
    // ASCII for ASCII: the text stays UTF-8.
    let mapped = bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| reduced_byte(i, b))
        .collect();
    String::from_utf8(mapped).ok()
}

/// The byte at `i` of a key as [`reduced`] writes it.
#[inline(always)]
fn reduced_byte(i: usize, b: u8) -> u8 {
    match b {
        b'+' | b'*' => b'x',
        b'@' => b'a',
        b'|' => b'l',
        b'0'..=b'9' if i == 0 => b'a' + (b - b'0'),
        b => b,
    }
}

/// The key as the Singer SDK's flattener abbreviates it when a column's name would reach its
/// length limit (255 by default, lower for some databases): `inflection.camelize` (the first
/// character and each after `_` or `/` in upper case, the `_` dropped), every ASCII lower-case letter
/// deleted, the rest lower-cased, so that `Cxxx…ONTEXT` is `context` and `T_y_p_e…` is `type`;
/// the later value wins. A character beyond ASCII stays (Python's `upper` and `lower` make
/// some of them ASCII letters, `ı` an `I`; the SQL sinks drop the others): see
/// [`abbreviation_names`]. Worked out only for keys with at least two such letters after the
/// first character (a name of three or more letters needs them); `None` for the others and
/// where nothing is deleted.
fn abbreviated(key: &str) -> Option<String> {
    let kept = key
        .bytes()
        .skip(1)
        .filter(|b| !b.is_ascii_lowercase())
        .take(2)
        .count();
    if kept < 2 {
        return None;
    }
    let mut out = String::new();
    let mut upper_next = true;
    for c in key.chars() {
        let c = match upper_next {
            true => c.to_ascii_uppercase(),
            false => c,
        };
        upper_next = c == '_' || c == '/';
        if c == '_' || c.is_ascii_lowercase() {
            continue;
        }
        out.push(c.to_ascii_lowercase());
    }
    // Letters and digits only, as the column is compared.
    out.retain(|c| c.is_ascii_alphanumeric() || !c.is_ascii());
    (out.chars().count() >= 3 && out.len() < key.len()).then_some(out)
}

/// Whether an abbreviation (see [`abbreviated`]) is `name`: its ASCII letters and digits in
/// any case, each character beyond ASCII as any letters or none (see [`transliterates_to`]).
fn abbreviation_names(abbreviation: &str, name: &str) -> bool {
    match abbreviation.is_ascii() {
        true => abbreviation.eq_ignore_ascii_case(name),
        false => transliterates_to_name(abbreviation, name),
    }
}

/// Whether a key starts with a digit (see [`reduced`]).
fn leading_digit(key: &[u8]) -> bool {
    key.first().is_some_and(u8::is_ascii_digit)
}

/// What of a key can spell an ASCII name, as key converters read it: ASCII letters and digits,
/// Latin letters as lodash's `deburr` gives them, and the letters readers fold onto ASCII ones
/// (see [`folds_to`]); everything else (separators, white space, marks, other scripts) dropped.
fn spelling(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            c if c.is_ascii_alphanumeric() => out.push(c),
            '\u{212A}' => out.push('k'),
            c => out.push_str(deburred(c)),
        }
    }
    out
}

/// The most letters and digits a transliterating loader writes for one character: unidecode
/// (and text-unidecode, python-slugify's) up to twelve (`爫` is `Tsumekanmuri`), NFKD up to five.
const TRANSLITERATED_MAX: usize = 12;

/// ASCII characters that a key-naming library writes as a word: npm's `slugify` writes `&` as
/// `and`, `|` as `or`, `<` as `less`, `>` as `greater`, `$` as `dollar`, `%` as `percent` (and
/// other words under a locale: `y`, `o`, `und`); python-slugify decodes an HTML character
/// reference starting with `&` (`&#99;` is `c`, `&lt;` is `<`).
fn writes_a_word(b: u8) -> bool {
    matches!(b, b'&' | b'|' | b'<' | b'>' | b'$' | b'%')
}

/// Whether a loader may transliterate `key` into other letters than its own (see
/// [`transliterates_to`]).
pub fn transliterable(key: &str) -> bool {
    !key.is_ascii() || key.bytes().any(writes_a_word)
}

/// Whether a loader that transliterates keys into Latin before naming columns can write `key`
/// as the letters and digits `target` (lower case), or as as many of them as one of `ends` says
/// (and then, with `index_after`, an index: see [`spells_path`]). Such loaders (unidecode,
/// text-unidecode and python-slugify, npm's `transliteration` and `slugify`, Airbyte's and
/// Fivetran's NFKD-and-drop-the-marks naming) disagree and their tables are large, so a
/// character beyond ASCII, one that a library writes as a word (see [`writes_a_word`]) and an
/// HTML character reference (`&#99;`, `&#x63;`, `&lt;`) are taken for any letters and digits up
/// to [`TRANSLITERATED_MAX`], or none (a dropped mark or symbol): `ｃｏｎｔｅｘｔ`, a Cyrillic
/// `Аdvertising`, `con\u{219}ent`, a Greek `τ` in `τype`, `conセnt` (`セ` is `se`),
/// `&#99;ontext` and `categ|yPreferences` can be those names, but not a key written wholly in
/// ideographs or kana (see [`ideographic`]). Other ASCII characters than letters and digits
/// are dropped, as columns are compared by their letters and digits.
#[inline(never)] // rare: keys beyond ASCII
fn transliterates_to(key: &str, target: &[u8], ends: &[usize], index_after: bool) -> bool {
    let n = target.len();
    if n == 0
        || key
            .chars()
            .all(|c| ideographic(c) || (c.is_ascii() && !c.is_ascii_alphanumeric()))
    {
        return false;
    }
    if n > 120 {
        return true; // too long a name to follow (none is): a look-alike
    }
    // States as bits: bit `p` when `p` of `target`'s letters are written, bit `n + 1` when an
    // index follows all of them.
    let letters: u128 = (1 << (n + 1)) - 1;
    let index: u128 = 1 << (n + 1);
    let mut at: u128 = 1;
    let mut rest = key;
    while let Some(c) = rest.chars().next() {
        rest = rest.get(c.len_utf8()..).unwrap_or_default();
        let finished = at & (index | 1 << n) != 0;
        let mut next = 0;
        if c.is_ascii_alphanumeric() {
            let b = (c as u8).to_ascii_lowercase();
            for (p, &t) in target.iter().enumerate() {
                if t == b {
                    next |= (at >> p & 1) << (p + 1);
                }
            }
            if index_after && finished && b.is_ascii_digit() {
                next |= index;
            }
        } else if !c.is_ascii() || writes_a_word(c as u8) {
            if c == '&' {
                rest = rest.get(character_reference(rest)..).unwrap_or_default();
            }
            for shift in 0..=TRANSLITERATED_MAX {
                next |= (at & letters) << shift;
            }
            // The rest of the letters, then digits.
            if index_after && (next & 1 << n != 0 || at & index != 0) {
                next |= index;
            }
        } else {
            continue; // a separator
        }
        at = next & (letters | index);
        if at == 0 {
            return false;
        }
    }
    ends.iter().any(|&end| end <= n && at >> end & 1 == 1) || (index_after && at & index != 0)
}

/// The length of an HTML character reference's rest after its `&` at the start of `text`
/// (`#99;`, `#x63;`, `lt;`), or 0.
fn character_reference(text: &str) -> usize {
    let Some(end) = text.bytes().take(40).position(|b| b == b';') else {
        return 0;
    };
    let name = text.as_bytes().get(..end).unwrap_or_default();
    let reference = match name {
        [b'#', b'x' | b'X', hex @ ..] => !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit),
        [b'#', digits @ ..] => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        [first, more @ ..] => {
            first.is_ascii_alphabetic() && more.iter().all(u8::is_ascii_alphanumeric)
        }
        [] => false,
    };
    match reference {
        true => end + 1,
        false => 0,
    }
}

/// Whether a character is a CJK ideograph or kana: a key written wholly in them (and
/// punctuation) is a name in that script (`広告`, `ページ`, `分析`), as it is to every other
/// reader, for no loader writes such a key as a field's name (unidecode writes ideographs as
/// syllables that spell none). Every other script is written letter for letter or syllable by
/// syllable into Latin by some loader (Cyrillic, Greek, Hebrew, Arabic, Hangul, Bopomofo:
/// `ㄘㄛㄋㄊㄜㄒㄊ` is unidecode's `CONTEXT`), and so are Latin's own forms.
fn ideographic(c: char) -> bool {
    matches!(
        c as u32,
        0x3000..=0x303F
            | 0x3040..=0x30FF
            | 0x31F0..=0x31FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xF900..=0xFAFF
            | 0xFF5F..=0xFF9F
            | 0x20000..=0x3FFFF
    )
}

/// Whether a transliterating loader can write `key` as `name` (see [`transliterates_to`]).
fn transliterates_to_name(key: &str, name: &str) -> bool {
    let letters = letters_of(name);
    transliterates_to(key, &letters, &[letters.len()], false)
}

/// A name's letters and digits, in lower case, as [`transliterates_to`] compares them (a name
/// beyond ASCII as key converters spell it).
fn letters_of(name: &str) -> Vec<u8> {
    let spelled;
    let text = match name.is_ascii() {
        true => name,
        false => {
            spelled = spelling(name);
            &spelled
        }
    };
    text.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
        .collect()
}

/// A Latin-1 Supplement or Latin Extended-A letter as lodash's `deburr` writes it in ASCII, in
/// lower case (`Ý` and `ý` are `y`, `ø` is `o`, `ß` is `ss`, `ſ` is `s`, `ı` and `İ` are `i`);
/// empty for anything else.
fn deburred(c: char) -> &'static str {
    match c {
        '\u{149}' => "'n",
        '\u{c0}'..='\u{c5}' | '\u{e0}'..='\u{e5}' | '\u{100}'..='\u{105}' => "a",
        '\u{c6}' | '\u{e6}' => "ae",
        '\u{c7}' | '\u{e7}' | '\u{106}'..='\u{10d}' => "c",
        '\u{d0}' | '\u{f0}' | '\u{10e}'..='\u{111}' => "d",
        '\u{c8}'..='\u{cb}' | '\u{e8}'..='\u{eb}' | '\u{112}'..='\u{11b}' => "e",
        '\u{11c}'..='\u{123}' => "g",
        '\u{124}'..='\u{127}' => "h",
        '\u{cc}'..='\u{cf}' | '\u{ec}'..='\u{ef}' | '\u{128}'..='\u{131}' => "i",
        '\u{132}'..='\u{133}' => "ij",
        '\u{134}'..='\u{135}' => "j",
        '\u{136}'..='\u{138}' => "k",
        '\u{139}'..='\u{142}' => "l",
        '\u{d1}' | '\u{f1}' | '\u{143}'..='\u{148}' | '\u{14a}'..='\u{14b}' => "n",
        '\u{d2}'..='\u{d6}' | '\u{d8}' | '\u{f2}'..='\u{f6}' | '\u{f8}' | '\u{14c}'..='\u{151}' => {
            "o"
        }
        '\u{152}'..='\u{153}' => "oe",
        '\u{154}'..='\u{159}' => "r",
        '\u{15a}'..='\u{161}' | '\u{17f}' => "s",
        '\u{df}' => "ss",
        '\u{162}'..='\u{167}' => "t",
        '\u{de}' | '\u{fe}' => "th",
        '\u{d9}'..='\u{dc}' | '\u{f9}'..='\u{fc}' | '\u{168}'..='\u{173}' => "u",
        '\u{174}'..='\u{175}' => "w",
        '\u{dd}' | '\u{fd}' | '\u{ff}' | '\u{176}'..='\u{178}' => "y",
        '\u{179}'..='\u{17e}' => "z",
        _ => "",
    }
}

/// The first segment of a key read as a path, as lodash's `stringToPath` reads it: segments end
/// at `.`, `[` and `]`, quotes around one are dropped, and so are backslashes.
fn first_segment(key: &str) -> String {
    key.split(['.', '[', ']', '"', '\''])
        .find(|s| !s.is_empty())
        .unwrap_or_default()
        .replace('\\', "")
}

/// [`Spellings`] for an ASCII key (unescaped: no backslash).
fn loosely_named(key: &[u8], names: &[Name]) -> bool {
    // Letters and digits only, not starting with a digit: the caller has compared them in any
    // case; only the Singer SDK's abbreviation may make them another name.
    if key.iter().all(u8::is_ascii_alphanumeric) && !leading_digit(key) {
        let Ok(key) = std::str::from_utf8(key) else {
            return false;
        };
        return abbreviated(key)
            .is_some_and(|a| names.iter().any(|n| abbreviation_names(&a, n.text)));
    }
    let Ok(key) = std::str::from_utf8(key) else {
        return false;
    };
    let spellings = Spellings::of(key);
    names.iter().any(|n| spellings.spell(n.text))
}

/// Whether a reader beyond those that fold case takes an ASCII key (not a [`common_key`]) for
/// one of `names`.
#[inline(never)]
fn read_as_a_name(key: &[u8], names: &[Name]) -> bool {
    jsoniter_takes(key, names) || loosely_named(key, names)
}

/// The keys events carry most: none of them has any other field's jsoniter hash or spelling (a
/// test checks; `integrations` is matched exactly first where it is a field), so they skip those
/// checks (the hash costs a multiplication per byte, one after the other). One candidate per
/// length and first and last byte, so that a key costs one comparison.
#[inline(always)]
fn common_key(key: &[u8]) -> bool {
    let (Some(first), Some(last)) = (key.first(), key.last()) else {
        return false;
    };
    let candidate: &[u8] = match (key.len(), first, last) {
        (2, b'i', b'p') => b"ip",
        (4, b'p', b'e') => b"page",
        (4, b'n', b'e') => b"name",
        (6, b'u', b'd') => b"userId",
        (6, b's', b't') => b"sentAt",
        (6, b't', b's') => b"traits",
        (6, b'l', b'e') => b"locale",
        (7, b'l', b'y') => b"library",
        (7, b'v', b'n') => b"version",
        (7, b'c', b'l') => b"channel",
        (7, b'g', b'd') => b"groupId",
        (8, b'w', b'y') => b"writeKey",
        (9, b'm', b'd') => b"messageId",
        (9, b't', b'p') => b"timestamp",
        (9, b'u', b't') => b"userAgent",
        (10, b'p', b's') => b"properties",
        (10, b'p', b'd') => b"previousId",
        (10, b'r', b't') => b"receivedAt",
        (11, b'a', b'd') => b"anonymousId",
        (12, b'i', b's') => b"integrations",
        (17, b'o', b'p') => b"originalTimestamp",
        _ => return false,
    };
    same_bytes(key, candidate)
}

/// A field name the decision reads (ASCII), with the hashes jsoniter knows it by.
#[derive(Clone, Copy)]
pub struct Name {
    pub text: &'static str,
    hashes: [u64; 2],
}

impl Name {
    pub const fn new(text: &'static str) -> Name {
        Name {
            text,
            hashes: jsoniter_hashes(text.as_bytes()),
        }
    }
}

/// json-iterator/go (jsoniter) decodes a struct of up to ten fields by comparing a 64-bit hash
/// of each key (its decoded bytes) with each field name's, never the text: to it, a key with a
/// field's hash is that field, whatever it says, and such keys are found in seconds. The hash
/// is FNV-1a's steps from FNV-32's basis and prime in 64-bit arithmetic, over the bytes with
/// ASCII upper case lowered (`[0]`, its default) or as they are (`[1]`, `CaseSensitive`).
pub const fn jsoniter_hashes(bytes: &[u8]) -> [u64; 2] {
    const BASIS: u64 = 0x811c_9dc5;
    const PRIME: u64 = 0x0100_0193;
    let (mut folded, mut exact) = (BASIS, BASIS);
    let mut rest = bytes;
    while let [b, more @ ..] = rest {
        exact = (exact ^ *b as u64).wrapping_mul(PRIME);
        folded = (folded ^ b.to_ascii_lowercase() as u64).wrapping_mul(PRIME);
        rest = more;
    }
    [folded, exact]
}

/// Whether jsoniter takes a key (its decoded bytes) for one of `names`.
fn jsoniter_takes(key: &[u8], names: &[Name]) -> bool {
    let hashes = jsoniter_hashes(key);
    names.iter().any(|n| hashes_meet(&n.hashes, &hashes))
}

/// Whether two keys' jsoniter hashes (see [`jsoniter_hashes`]) make them one to jsoniter, under
/// its default or `CaseSensitive`.
fn hashes_meet(a: &[u64; 2], b: &[u64; 2]) -> bool {
    a[0] == b[0] || a[1] == b[1]
}

/// Whether some case-insensitive reader would match `key` to the field named `name` (ASCII):
/// ASCII letters compare case-insensitively (Go's `encoding/json`, jsoniter, Jackson and .NET
/// when told to), and four non-ASCII letters fold onto ASCII ones in some of them: `ſ` (U+017F)
/// is `s` and the Kelvin sign (U+212A) is `k` (Go's simple folding, Java's `equalsIgnoreCase`),
/// `ı` (U+0131) is `i` (Java's `equalsIgnoreCase`, .NET's `OrdinalIgnoreCase`, Jackson under a
/// Turkish locale), and `İ` (U+0130) is `i` (jsoniter's and Go's `strings.ToLower`, Java).
pub fn folds_to(key: &str, name: &str) -> bool {
    // Each name byte needs one key character of one to three bytes.
    if key.len() < name.len() || key.len() > 3 * name.len() {
        return false;
    }
    if key.is_ascii() {
        return key.eq_ignore_ascii_case(name);
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
            '\u{0131}' | '\u{0130}' => n == b'i',
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

/// The fields of an event object that the decision reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Context,
    Type,
    Event,
    /// A body's batch; in a batch item, a batch of its own (unreadable: receivers that take an
    /// event or a batch through one model deliver what it holds).
    Batch,
    /// Only on routes that name a destination.
    Integrations,
}

/// The field names looked for on an object, a body's top level (which may be a batch) or a batch
/// item, with `integrations` on routes that name a destination.
const NAMES: [Name; 5] = [
    Name::new("context"),
    Name::new("type"),
    Name::new("event"),
    Name::new("batch"),
    Name::new("integrations"),
];
const FIELDS: [Field; 5] = [
    Field::Context,
    Field::Type,
    Field::Event,
    Field::Batch,
    Field::Integrations,
];

/// Reads one event object at the cursor. Syntax errors are `Err`; readable-but-ambiguous content
/// is reported through `readable: false` so that a batch can drop just that item and go on.
/// `batch_items`, when given (the body's top level), visits the elements of a `batch` array.
pub fn read_event<'a>(
    s: &mut Scanner<'a>,
    wanted: &Wanted,
    mut batch_items: Option<ItemVisitor<'_, 'a>>,
) -> Result<EventFacts, Invalid> {
    let mut facts = EventFacts::EMPTY;
    // Where the event starts: read again, rarely (see [`names_the_call_otherwise`]).
    let start = s.clone();
    let top = batch_items.is_some();
    // A batch item is read for `batch` too, and its look-alikes: a batch nested in an item is
    // one to a receiver that takes an event or a batch through one model (a pydantic, zod or Go
    // type that recurses), which delivers what it holds; here the item is unreadable.
    let (names, fields): (&[Name], &[Field]) = match wanted.destination.is_some() {
        false => (&NAMES[..4], &FIELDS[..4]),
        true => (&NAMES, &FIELDS),
    };
    let mut seen = [Seen::default(); NAMES.len()];
    let mut event_name: Option<Str<'a>> = None;
    // The first words of the paths the event's keys may start (see [`may_start_a_path`]).
    let starts: &[&[u8]] = match wanted.destination {
        Some(_) => &[b"context", b"integrations"],
        None => &[b"context"],
    };
    if s.object_start()? {
        loop {
            let key = s.key()?;
            let matched = match_key(&key, names);
            let at = match matched {
                KeyMatch::Exact(i) => Some(i),
                KeyMatch::Lookalike => {
                    facts.readable = false;
                    None
                }
                KeyMatch::Other | KeyMatch::OtherTransliterable => None,
            };
            if let Some(i) = at {
                if let Some(seen) = seen.get_mut(i) {
                    facts.readable &= seen.add();
                }
            }
            // Facade reads a top-level `options` as the event's `context` (`options()` is
            // `obj.options || obj.context`), and as its `integrations` (legacy clients): the
            // consent and the switches would be read two ways.
            if at.is_none() && may_be_options(key.raw()) && facade_folds_rare(&key, "options") {
                facts.readable = false;
            }
            // The key's bytes first: most keys start no path, and are not read further.
            let nested = at.is_none()
                && (matched == KeyMatch::OtherTransliterable || may_start_a_path(&key, starts))
                && s.peek_token() == Some(b'{');
            if at.is_none()
                && (may_flatten(&key, 13, matched) || nested)
                && flattens_to_event_fields(&key, wanted, nested)
            {
                facts.readable = false;
            }
            let field = at.and_then(|i| fields.get(i).copied());
            // Only a body's top level can be a batch envelope (told once: one key is enough).
            if top
                && !facts.has_event_fields
                && !matches!(
                    field,
                    Some(Field::Context | Field::Batch | Field::Integrations)
                )
                && !BATCH_ENVELOPE.iter().any(|k| key.eq_str(k))
            {
                facts.has_event_fields = true;
            }
            match field {
                Some(Field::Context) => match read_context(s, wanted)? {
                    Some((consent, rudder)) => {
                        facts.consent = consent;
                        facts.rudder = rudder;
                    }
                    None => facts.readable = false,
                },
                Some(Field::Type) => {
                    facts.call = Some(match s.peek_token() {
                        // Unescaped (as sent), its bytes are its text: no decoding per event.
                        Some(b'"') => match s.string()? {
                            value if value.is_escaped() => Call::from_type(&value.decode()),
                            value => Call::from_text(value.raw()),
                        },
                        _ => {
                            s.skip_value()?;
                            Call::Other
                        }
                    });
                }
                Some(Field::Event) => {
                    event_name = match s.peek_token() {
                        Some(b'"') => Some(s.string()?),
                        _ => {
                            s.skip_value()?;
                            None
                        }
                    };
                }
                Some(Field::Batch) => {
                    facts.batch = match (s.peek_token(), batch_items.as_mut()) {
                        (Some(b'['), Some(visit)) => Some(read_items(s, &mut **visit)?),
                        _ => {
                            // `batch` that is not a list, or a batch item's own: not a batch
                            // anyone could judge.
                            s.skip_value()?;
                            facts.readable = false;
                            None
                        }
                    };
                }
                Some(Field::Integrations) => {
                    let destination = wanted.destination.unwrap_or_default();
                    match read_integrations(s, destination)? {
                        Some(integrations) => facts.integrations = integrations,
                        None => facts.readable = false,
                    }
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
    if facts.allow_listed_name && names_the_call_otherwise(start)? {
        facts.allow_listed_name = false;
    }
    Ok(facts)
}

/// The keys a `track` call of Segment's spec and of the libraries that send it may carry at
/// its top level (and `traits`, an identify's, which some send along).
const TRACK_KEYS: [&str; 23] = [
    "type",
    "event",
    "properties",
    "traits",
    "userId",
    "anonymousId",
    "context",
    "integrations",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
    "messageId",
    "version",
    "channel",
    "writeKey",
    "_metadata",
    "projectId",
    "rudderId",
    "request_ip",
    // RudderStack's Android SDK (when the app sets them), analytics-swift's.
    "userProperties",
    "destinationProps",
    "metrics",
];

/// Whether the event (the object at `s`) has a key beyond [`TRACK_KEYS`]. A receiver's model
/// may bind `type` and `event` to attributes named otherwise (marshmallow's `data_key`,
/// class-transformer's `@Expose({name})`, pydantic's alias with extra keys dumped), and then
/// takes a key of that name, after the field, for them: `"event_name"`, `"name"` or `"e"`
/// holding `"Order Completed"` beside an allow-listed `event` is that event to it, and no key
/// list can name every such attribute. Read only for an allow-listed event, which is then
/// judged on its consent instead.
fn names_the_call_otherwise(mut s: Scanner) -> Result<bool, Invalid> {
    let other = |key: &Str| !TRACK_KEYS.iter().any(|k| key.eq_str(k));
    Ok(own_keys(&mut s, &other)? == Some(true))
}

/// Reads the object at the cursor: `None` when it is empty, else whether one of its own keys
/// is one `which` takes. (One loop for the rare readings of an object's keys.)
#[inline(never)]
fn own_keys(s: &mut Scanner, which: &dyn Fn(&Str) -> bool) -> Result<Option<bool>, Invalid> {
    if !s.object_start()? {
        return Ok(None);
    }
    let mut found = false;
    loop {
        found |= which(&s.key()?);
        s.skip_value()?;
        if !s.object_more()? {
            return Ok(Some(found));
        }
    }
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

/// Whether an event's key is, to a flattener, a path through `context` or `integrations` to a
/// field the decision reads (see [`flattens_to`]).
#[inline(never)] // rare: see [`may_flatten`]
fn flattens_to_event_fields(key: &Str, wanted: &Wanted, nested: bool) -> bool {
    let key = &key.decode();
    flattens_to_consent(key, wanted, true, nested)
        || wanted.destination.is_some_and(|d| {
            flattens_to(key, &["integrations", d], nested)
                || flattens_to(key, &["integrations", "All"], nested)
        })
}

/// Whether a key of `context` is, to a flattener, a path through `consent` or
/// `consentManagement` to a field the decision reads (see [`flattens_to`]).
#[inline(never)] // rare: see [`may_flatten`]
fn flattens_to_context_fields(key: &Str, wanted: &Wanted, nested: bool) -> bool {
    flattens_to_consent(&key.decode(), wanted, false, nested)
}

/// The paths to the consent the decision reads, from the event (`from_event`) or its `context`.
fn flattens_to_consent(key: &str, wanted: &Wanted, from_event: bool, nested: bool) -> bool {
    let from = usize::from(!from_event);
    wanted.categories.iter().any(|c| {
        let path = ["context", "consent", "categoryPreferences", c];
        path.get(from..)
            .is_some_and(|p| flattens_to(key, p, nested))
    }) || CONSENT_MANAGEMENT_FIELDS.iter().any(|f| {
        let path = ["context", "consentManagement", f];
        path.get(from..)
            .is_some_and(|p| flattens_to(key, p, nested))
    })
}

/// Whether a flattener or a warehouse loader writes `key` as the same column as a path of two or
/// more fields the decision reads from this object, or as the start of one (the rest then comes
/// from the key's value): they join nested keys with a separator (flatten_json's `_`, flat's and
/// pandas' configurable one) and snake-case the result (RudderStack's warehouse loader), and the
/// later value wins. So keys are compared with everything but letters and digits dropped and
/// case ignored (see [`spelling`]): `consent_category_preferences_advertising`,
/// `Consent-Category-Preferences` (holding `Advertising`) and `categoryPreferences/Advertising`
/// are such paths. A key whose value is an object (`nested`) may also end where a word of a
/// field's name ends, the rest of the path coming from the keys in its value: the loader
/// snake-cases the column, so `category` holding `{"preferences": …}` in `consent`, or
/// `deniedConsent` holding `{"ids": …}`, is `categoryPreferences`'s or `deniedConsentIds`'s
/// column (RudderStack's warehouse loader writes both to one, in any order).
fn flattens_to(key: &str, path: &[&str], nested: bool) -> bool {
    spells_path(key, path, nested)
        || reduced(key).is_some_and(|r| spells_path(&r, path, nested))
        || (transliterable(key) && transliterates_to_path(key, path, nested))
}

/// Whether a key whose value is an object may start a path whose first word is one of `words`
/// (lower case; see [`flattens_to`]): the key's letters and digits, as [`reduced`] maps them,
/// start with it. Keys beyond ASCII are taken by [`may_flatten`].
#[inline(always)]
fn may_start_a_path(key: &Str, words: &[&[u8]]) -> bool {
    // Most keys start with a letter that starts no word.
    match key.raw().first() {
        Some(b) if b.is_ascii_alphabetic() => {
            let first = b.to_ascii_lowercase();
            words.iter().any(|w| w.first() == Some(&first)) && starts_a_path(key, words)
        }
        _ => starts_a_path(key, words),
    }
}

/// [`may_start_a_path`] past the first letter.
#[inline(never)]
fn starts_a_path(key: &Str, words: &[&[u8]]) -> bool {
    let raw = key.raw();
    let letters = raw
        .iter()
        .enumerate()
        .map(|(i, &b)| reduced_byte(i, b))
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase());
    words.iter().any(|word| {
        let mut l = letters.clone();
        word.iter().all(|w| l.next() == Some(*w))
    })
}

/// The letters and digits of a field's name, each with whether a word of the name starts there
/// (past the first): an upper-case letter (`categoryPreferences`), or one after other
/// characters (`ad_storage`, `Data.Sharing`).
fn name_letters(field: &str) -> impl Iterator<Item = (u8, bool)> + '_ {
    let mut after_other = false;
    let mut first = true;
    field.bytes().filter_map(move |b| {
        if !b.is_ascii_alphanumeric() {
            after_other = true;
            return None;
        }
        let starts = !first && (b.is_ascii_uppercase() || after_other);
        (first, after_other) = (false, false);
        Some((b, starts))
    })
}

/// Where a word of a field's name ends (see [`name_letters`]).
fn word_ends(field: &str) -> impl Iterator<Item = usize> + '_ {
    name_letters(field)
        .enumerate()
        .filter(|(_, (_, starts))| *starts)
        .map(|(i, _)| i)
}

/// Whether a key may end with the `i`th of a path's `len` fields: from the second on (a key
/// of one field is that field's own name), and with `nested` any but the last too, the rest
/// coming from the key's value (`management` holding `{"deniedConsentIds": …}`).
fn field_ends_a_path(i: usize, len: usize, nested: bool) -> bool {
    i >= 1 || (nested && i + 1 < len)
}

/// [`spells_path`] for a loader that transliterates the key (see [`transliterates_to`]).
#[inline(never)]
fn transliterates_to_path(key: &str, path: &[&str], nested: bool) -> bool {
    let mut letters = Vec::new();
    // Where the letters of the second field and those after it end (and, `nested`, every word
    // of every field, and every field but the last).
    let mut ends = Vec::new();
    for (i, field) in path.iter().enumerate() {
        if nested && field.is_ascii() {
            ends.extend(word_ends(field).map(|at| letters.len() + at));
        }
        letters.extend(letters_of(field));
        if field_ends_a_path(i, path.len(), nested) {
            ends.push(letters.len());
        }
    }
    let list = matches!(
        path.last(),
        Some(&"deniedConsentIds" | &"allowedConsentIds")
    );
    transliterates_to(key, &letters, &ends, list)
}

/// [`flattens_to`] for one spelling of the key. A path that ends at a list (`deniedConsentIds`)
/// also takes an item's index after it: flatten_json writes the list's items as
/// `…_deniedConsentIds_0`.
#[inline(never)]
fn spells_path(key: &str, path: &[&str], nested: bool) -> bool {
    fn letters(text: &str) -> std::borrow::Cow<'_, str> {
        match text.is_ascii() {
            true => std::borrow::Cow::Borrowed(text),
            false => std::borrow::Cow::Owned(spelling(text)),
        }
    }
    let key = letters(key);
    let mut k = key
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
        .peekable();
    for (i, field) in path.iter().enumerate() {
        let field = letters(field);
        for (b, word_starts) in name_letters(&field) {
            // With `nested`, the key may end before a word of the field.
            if nested && word_starts && k.peek().is_none() {
                return true;
            }
            if k.next() != Some(b.to_ascii_lowercase()) {
                return false;
            }
        }
        if field_ends_a_path(i, path.len(), nested) && k.peek().is_none() {
            return true;
        }
    }
    let list = matches!(
        path.last(),
        Some(&"deniedConsentIds" | &"allowedConsentIds")
    );
    list && k.peek().is_some() && k.all(|b| b.is_ascii_digit())
}

/// Whether a key as scanned may spell a path whose letters number at least `min` (see
/// [`flattens_to`]): an ASCII key spells no more letters than it has bytes, and nearly every
/// key is shorter than a path of two fields; a character beyond ASCII may be transliterated
/// into many.
#[inline(always)]
fn may_flatten(key: &Str, min: usize, matched: KeyMatch) -> bool {
    key.raw().len() >= min || matched == KeyMatch::OtherTransliterable
}

/// Whether a key has no letter or digit at all (`""`, `" "`, `"_"`): a flattener adds nothing
/// for it to the column's name, so the members of its value become the object's own, after the
/// real ones (flatten_json, flat and pandas' `json_normalize` for `""`, a snake-casing
/// warehouse loader for the others).
/// (Only ASCII punctuation and white space count: a key in another script is a name, as it
/// is to every other reader.)
fn nameless(text: &str) -> bool {
    text.chars()
        .all(|c| !c.is_ascii_alphanumeric() && (c.is_ascii() || c.is_whitespace()))
}

/// Reads an object in which the decision uses one field, `name`, read by `read_field`.
/// `Ok(None)`: the object is unreadable (not an object, or the field is ambiguous).
/// `inside` is whether a key (and whether its value is an object) is a path through `name` (see
/// [`flattens_to`]); `first_word` is `name`'s (`category` of `categoryPreferences`).
fn read_one_field<T>(
    s: &mut Scanner,
    name: Name,
    first_words: &[&[u8]],
    absent: T,
    inside: impl Fn(&str, bool) -> bool,
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
            let matched = match_key(&key, &[name]);
            let nested = matched.is_other()
                && (matched == KeyMatch::OtherTransliterable
                    || may_start_a_path(&key, first_words))
                && s.peek_token() == Some(b'{');
            match matched {
                KeyMatch::Exact(_) => {
                    let read = read_field(s)?;
                    value = if seen.add() { read } else { None };
                }
                KeyMatch::Lookalike => {
                    s.skip_value()?;
                    value = None;
                    seen.add();
                }
                _ if matched.is_other()
                    && (may_flatten(&key, 19, matched) || nested)
                    && inside(&key.decode(), nested) =>
                {
                    s.skip_value()?;
                    value = None;
                }
                KeyMatch::Other | KeyMatch::OtherTransliterable => s.skip_value()?,
            }
            if !s.object_more()? {
                break;
            }
        }
    }
    Ok(value)
}

/// The consent shapes the format reads from `context`: (Segment's, RudderStack's).
/// `Ok(None)`: `context`, or a consent key in it, is there but unreadable.
fn read_context(s: &mut Scanner, wanted: &Wanted) -> Result<Option<(Consent, Consent)>, Invalid> {
    const CONSENT: Name = Name::new("consent");
    const CONSENT_MANAGEMENT: Name = Name::new("consentManagement");
    let names: &[Name] = match wanted.format {
        ConsentFormat::Segment => &[CONSENT],
        ConsentFormat::Rudderstack => &[CONSENT_MANAGEMENT],
        ConsentFormat::Auto => &[CONSENT, CONSENT_MANAGEMENT],
    };
    if s.peek_token() != Some(b'{') {
        s.skip_value()?;
        return Ok(None);
    }
    let (mut segment, mut rudder) = (Consent::Absent, Consent::Absent);
    // Under a format that reads one shape, the other's key is read too (its reader must let
    // the event go as well), and a look-alike of it is a second reading of it, as for the
    // format's own key.
    let other = match wanted.format {
        ConsentFormat::Segment => Some(CONSENT_MANAGEMENT),
        ConsentFormat::Rudderstack => Some(CONSENT),
        ConsentFormat::Auto => None,
    };
    let mut readable = true;
    let mut seen = [Seen::default(); 2];
    let mut seen_other = Seen::default();
    if s.object_start()? {
        loop {
            let key = s.key()?;
            let matched = match_key(&key, names);
            match matched {
                KeyMatch::Exact(i) => {
                    readable &= seen.get_mut(i).is_some_and(Seen::add);
                    let read = if names.get(i).is_some_and(|n| n.text == CONSENT.text) {
                        read_consent(s, wanted)?.map(|c| (c, true))
                    } else {
                        read_consent_management(s, wanted.categories)?.map(|c| (c, false))
                    };
                    match read {
                        Some((c, true)) => segment = c,
                        Some((c, false)) => rudder = c,
                        None => readable = false,
                    }
                }
                KeyMatch::Lookalike => {
                    s.skip_value()?;
                    readable = false;
                }
                KeyMatch::Other | KeyMatch::OtherTransliterable => {
                    let other_match = other.map(|name| match_key(&key, &[name]));
                    // A path through `consent` or `consentManagement` to a flattener (not the
                    // other shape's own key: `consent` also starts `consentManagement`).
                    let nested = !matches!(other_match, Some(KeyMatch::Exact(_)))
                        && (matched == KeyMatch::OtherTransliterable
                            || may_start_a_path(&key, &[b"consent"]))
                        && s.peek_token() == Some(b'{');
                    readable &= !((may_flatten(&key, 25, matched) || nested)
                        && flattens_to_context_fields(&key, wanted, nested));
                    // Facade reads `context` as the event's options: `context.all: false` turns
                    // every destination off for it, `context.Mixpanel` is Mixpanel's switch
                    // when the event has no `integrations`.
                    if let Some(destination) = wanted.destination {
                        readable &= !facade_switch(&key.decode(), destination);
                    }
                    match other_match {
                        // The other shape itself: read, for its reader must let the event go
                        // too (see `decision::decide`).
                        Some(KeyMatch::Exact(_)) => {
                            readable &= seen_other.add();
                            let read = match wanted.format {
                                ConsentFormat::Segment => {
                                    read_consent_management(s, wanted.categories)?
                                }
                                _ => read_consent(s, wanted)?,
                            };
                            match (read, wanted.format) {
                                (Some(c), ConsentFormat::Segment) => rudder = c,
                                (Some(c), _) => segment = c,
                                (None, _) => readable = false,
                            }
                            if !s.object_more()? {
                                break;
                            }
                            continue;
                        }
                        // Any key a reader takes for the other shape's (`Consent`,
                        // `con\u017fent`, `consent_management`): a second reading of a field
                        // the decision reads (row 11a), as for the format's own (row 2).
                        Some(m) => readable &= m.is_other(),
                        None => {}
                    }
                    s.skip_value()?;
                }
            }
            if !s.object_more()? {
                break;
            }
        }
    }
    Ok(readable.then_some((segment, rudder)))
}

/// Segment's `consent` object. `Ok(None)`: unreadable.
///
/// `consent` also starts `consentManagement`: to a flattener that snake-cases its columns, a
/// key `management` (or `management_denied_consent_ids`) here is a path to RudderStack's
/// fields, the other shape's (row 11a), which the decision reads too.
fn read_consent(s: &mut Scanner, wanted: &Wanted) -> Result<Option<Consent>, Invalid> {
    read_one_field(
        s,
        Name::new("categoryPreferences"),
        &[b"category", b"management"],
        Consent::NoPreferences,
        |key, nested| {
            wanted
                .categories
                .iter()
                .any(|c| flattens_to(key, &["categoryPreferences", c], nested))
                || CONSENT_MANAGEMENT_FIELDS
                    .iter()
                    .any(|f| flattens_to(key, &["management", f], nested))
        },
        |s| {
            Ok(
                read_preferences(s, wanted)?.map(|(consented, respelled)| Consent::Preferences {
                    consented,
                    respelled,
                }),
            )
        },
    )
}

/// The fields of RudderStack's `consentManagement` object.
const CONSENT_MANAGEMENT_FIELDS: [&str; 4] = [
    "deniedConsentIds",
    "allowedConsentIds",
    "provider",
    "resolutionStrategy",
];

/// RudderStack's `consentManagement` object, read as rudder-server reads it (its Go struct, so
/// keys in any case are the same field): `deniedConsentIds` decides, and so does
/// `allowedConsentIds` when it lists an ID (rudder-server's releases differ: before its
/// allow-list release only the denied IDs count, since then a listed allowed ID makes the allowed
/// list decide alone; an event must pass both readings); `provider: "custom"` takes
/// the strategy from the route; `resolutionStrategy: "or"` needs only one required ID not
/// denied, where rudder-server reads it (another `provider` than none, `""` or `oneTrust`, see
/// [`Provider`]). Every field it has must have the type rudder-server expects (where rudder-server
/// would then ignore the whole object and deliver, the filter refuses). `Ok(None)`: unreadable.
fn read_consent_management(
    s: &mut Scanner,
    categories: &[String],
) -> Result<Option<Consent>, Invalid> {
    const NAMES: [Name; 4] = [
        Name::new(CONSENT_MANAGEMENT_FIELDS[0]),
        Name::new(CONSENT_MANAGEMENT_FIELDS[1]),
        Name::new(CONSENT_MANAGEMENT_FIELDS[2]),
        Name::new(CONSENT_MANAGEMENT_FIELDS[3]),
    ];
    if s.peek_token() != Some(b'{') {
        s.skip_value()?;
        return Ok(None);
    }
    let mut readable = true;
    let mut seen = [Seen::default(); NAMES.len()];
    let mut denied: Option<u64> = None;
    let mut allowed: Option<u64> = None;
    let mut provider = Provider::OneTrustOrNone;
    let mut or = false;
    if s.object_start()? {
        loop {
            let key = s.key()?;
            match match_key(&key, &NAMES) {
                KeyMatch::Exact(i) => {
                    readable &= seen.get_mut(i).is_some_and(Seen::add);
                    match i {
                        0 => match read_id_list(s, categories)? {
                            Some(bits) => denied = Some(bits),
                            None => readable = false,
                        },
                        1 => match read_allowed_ids(s, categories)? {
                            Some(ids) => allowed = ids,
                            None => readable = false,
                        },
                        2 => match read_provider(s)? {
                            Some(p) => provider = p,
                            None => readable = false,
                        },
                        _ => match read_word(s, "or")? {
                            Some(is) => or = is,
                            None => readable = false,
                        },
                    }
                }
                KeyMatch::Lookalike => {
                    s.skip_value()?;
                    readable = false;
                }
                KeyMatch::Other | KeyMatch::OtherTransliterable => {
                    // A list's item as a flattener writes it (`deniedConsentIds_0`).
                    // A key ending where a word of a field's name ends, holding the rest
                    // (`denied` holding `{"consentIds": …}`, `resolution` holding
                    // `{"strategy": …}`).
                    let text = key.decode();
                    let nested = s.peek_token() == Some(b'{');
                    readable &= !CONSENT_MANAGEMENT_FIELDS
                        .iter()
                        .any(|f| flattens_to(&text, &[f], nested));
                    s.skip_value()?;
                }
            }
            if !s.object_more()? {
                break;
            }
        }
    }
    if !readable {
        return Ok(None);
    }
    Ok(Some(match (denied, allowed) {
        (None, None) => Consent::NoPreferences,
        (denied, allowed) => Consent::Denied {
            denied: denied.unwrap_or(0),
            allowed,
            strategy: match (provider, or) {
                (Provider::Custom, _) => Strategy::Route,
                (Provider::Other, true) => Strategy::Or,
                _ => Strategy::And,
            },
        },
    }))
}

/// `allowedConsentIds`: an array of IDs, or (older OneTrust builds of RudderStack's JS SDK) an
/// object keyed by ID, as rudder-server reads it. `Ok(Some(None))` when it lists no ID;
/// `Ok(Some(Some(bits)))` when it lists one, bit `i` set when required category `i` is listed
/// exactly (rudder-server trims IDs and drops empty ones first: an ID listed in another spelling,
/// or one it would drop, does not allow a category here, which can only refuse more, and any
/// non-empty ID makes the list one that decides). `Ok(None)`: unreadable (another type, an
/// element that is not a string, an ID some reader reads as a category the others do not).
fn read_allowed_ids(
    s: &mut Scanner,
    categories: &[String],
) -> Result<Option<Option<u64>>, Invalid> {
    let mut listed = false;
    let mut bits = 0u64;
    let mut readable = true;
    let mut add = |id: &Str| {
        listed |= !id.raw().is_empty();
        match id.position_in(categories) {
            Some(i) if i < 64 => bits |= 1u64 << i,
            Some(_) => {}
            None => readable &= !read_as_a_category(id, categories),
        }
    };
    match s.peek_token() {
        Some(b'[') => {
            if s.array_start()? {
                loop {
                    if s.peek_token() != Some(b'"') {
                        s.skip_value()?;
                        while s.array_more()? {
                            s.skip_value()?;
                        }
                        return Ok(None);
                    }
                    add(&s.string()?);
                    if !s.array_more()? {
                        break;
                    }
                }
            }
        }
        Some(b'{') => {
            if s.object_start()? {
                loop {
                    add(&s.key()?);
                    s.skip_value()?;
                    if !s.object_more()? {
                        break;
                    }
                }
            }
        }
        _ => {
            s.skip_value()?;
            return Ok(None);
        }
    }
    Ok(readable.then_some(listed.then_some(bits)))
}

/// A list of consent IDs (strings): the bits of `categories` it names. `Ok(None)` for anything
/// but an array of strings, or an ID that a reader stopping at NUL, or one that turns Oj's
/// Symbols back into strings, takes for a category, or an ID of digits alone where the route's
/// IDs are not numbers (Jackson binds `"0"` to an enum's first constant, whichever it is), or
/// one that may be another number where they are (see [`may_be_another_number`]). An ID that
/// another reader takes for a category names it too (see [`names_an_id`]).
fn read_id_list(s: &mut Scanner, categories: &[String]) -> Result<Option<u64>, Invalid> {
    if s.peek_token() != Some(b'[') {
        s.skip_value()?;
        return Ok(None);
    }
    let mut bits = 0u64;
    let mut readable = true;
    // What a loose comparison reads in the route's IDs, once for the list.
    let numbers: Vec<Option<Number>> = categories.iter().map(|c| loose_number(c, false)).collect();
    let numeric = numbers.iter().any(Option::is_some);
    let padded = categories.iter().any(|c| c.len() > 1 && c.starts_with('0'));
    if s.array_start()? {
        loop {
            if s.peek_token() == Some(b'"') {
                let id = s.string()?;
                match id.position_in(categories) {
                    Some(i) if i < 64 => bits |= 1u64 << i,
                    Some(_) => {}
                    None if read_as_a_category(&id, categories) => readable = false,
                    None => {
                        let text = id.decode();
                        let read = numeric.then(|| loose_number(&text, true)).flatten();
                        let named = categories
                            .iter()
                            .zip(&numbers)
                            .take(64)
                            .enumerate()
                            .filter(|(_, (c, n))| names_an_id(&text, c, n.as_ref(), read.as_ref()))
                            .fold(0u64, |bits, (i, _)| bits | 1u64 << i);
                        bits |= named;
                        // (A list read with no categories names nothing, and refuses nothing.)
                        readable &= named != 0
                            || categories.is_empty()
                            || match numeric {
                                true => !may_be_another_number(&text, padded),
                                false => !enum_ordinal(&text),
                            };
                    }
                }
            } else {
                s.skip_value()?;
                readable = false;
            }
            if !s.array_more()? {
                break;
            }
        }
    }
    Ok(readable.then_some(bits))
}

/// Whether some reader takes an ID (not a category exactly) for a category the others do not:
/// Oj's Symbol `:C0001` is `C0001` to a reader that takes it `to_s`, and `C0001\u0000x` to a
/// reader that stops at NUL.
fn read_as_a_category(id: &Str, categories: &[String]) -> bool {
    symbol_position(id, categories).is_some()
        || (id.is_escaped() && nul_prefix_position(id, categories).is_some())
}

/// Whether a receiver other than rudder-server, which compares IDs exactly, takes the ID `text`
/// (not `id` exactly) for the route's ID `id`: a Java enum binder in another spelling (Gson
/// takes the constant's name, `ADVERTISING` or `DATA_SHARING`; Jackson's
/// `ACCEPT_CASE_INSENSITIVE_ENUMS` folds case as `equalsIgnoreCase` does), or a loose
/// comparison of numbers (PHP's `in_array` and `==` read `"05"` and `"5.0"` as `"5"`, Perl's
/// `==` reads the number a string starts with). Such an ID denies `id` too: the stricter
/// reading.
/// `id_number` and `read` are what [`loose_number`] reads in `id` and (as a prefix) in `text`.
fn names_an_id(text: &str, id: &str, id_number: Option<&Number>, read: Option<&Number>) -> bool {
    names_a_value(text, id)
        || id_number.is_some_and(|n| match read {
            // Digits beyond a double's may round it onto the route's number: taken for it.
            Some((_, digits, _)) if digits.len() > 15 => true,
            read => read == Some(n),
        })
}

/// Whether a Java enum binder takes the string `text` for the constant whose value is `value`:
/// Jackson trims what is not above U+0020 first; Gson takes the constant's name
/// (`DATA_SHARING` for `DataSharing`: the same letters and digits, ASCII ones in any case),
/// Jackson's `ACCEPT_CASE_INSENSITIVE_ENUMS` any case (`equalsIgnoreCase`, which also folds
/// `ſ`, `ı`, `İ` and the Kelvin sign onto ASCII letters). Letters beyond ASCII are compared as
/// written (no case tables in the wasm module: `РЕКЛАМА` is not `Реклама` here).
fn names_a_value(text: &str, value: &str) -> bool {
    let trimmed = text.trim_matches(|c: char| c <= ' ' || c.is_whitespace());
    let letters = |t: &str| -> String {
        t.chars()
            .map(|c| crate::target::ascii_fold(c).to_ascii_lowercase())
            .filter(|c| !c.is_ascii() || c.is_ascii_alphanumeric())
            .collect()
    };
    let (a, b) = (letters(trimmed), letters(value));
    trimmed == value || (!a.is_empty() && a == b)
}

/// On a route whose IDs are numbers, whether some reader may read the ID `text` (none of them)
/// as a number other than as written: anything but plain ASCII digits (leading zeros only
/// where a route's ID has them) that starts, white space aside, like a number — Jackson binds
/// `"04"` to the constant at place 4, JavaScript's `==` reads `"0x5"` and `"\u{a0}5"` as 5,
/// Python's `int` `"0_5"` and other scripts' digits, Java's `Integer.decode` `"#05"`.
/// `padded_ids`: some route ID has leading zeros.
fn may_be_another_number(text: &str, padded_ids: bool) -> bool {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let padded = text.len() > 1 && text.starts_with('0');
    if digits && (!padded || padded_ids) {
        return false;
    }
    // White space, in any script, first: a character beyond ASCII may be either.
    let start = text.trim_start_matches(|c: char| c <= ' ' || !c.is_ascii());
    let skipped = text.get(..text.len() - start.len()).unwrap_or_default();
    // A sign, then a digit or `.`, or a radix's mark: Java's `Integer.decode` reads `"#05"`,
    // Perl's `oct` `"x5"`, `"o5"` and `"b101"`.
    let unsigned = start.trim_start_matches(['+', '-']);
    let radix = match unsigned.as_bytes() {
        [b'#', ..] => true,
        [b'x' | b'X' | b'o' | b'O' | b'b' | b'B', next, ..] => next.is_ascii_hexdigit(),
        _ => false,
    };
    !skipped.is_ascii() || radix || unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
}

/// Whether Jackson binds the string `text` to an enum's constant by its place: once trimmed
/// (see [`names_a_value`]), an ASCII digit and then decimal digits (`Integer.parseInt` takes
/// every script's: here any character beyond ASCII counts as one).
fn enum_ordinal(text: &str) -> bool {
    let trimmed = text.trim_matches(|c: char| c <= ' ');
    trimmed.starts_with(|c: char| c.is_ascii_digit())
        && trimmed.chars().all(|c| c.is_ascii_digit() || !c.is_ascii())
}

/// A number as [`loose_number`] reads it: its sign, significant digits, and the power of ten of
/// the first.
type Number = (bool, Vec<u8>, i64);

/// The number a loose comparison reads in `text`: PHP's numeric strings (white space around,
/// a sign, digits with a `.`, an exponent), or with `prefix` the number a string starts with,
/// as Perl's `==` reads it (`"5abc"` is 5). As its sign, its significant digits and the power
/// of ten of the first, so that equal numbers give equal values (without a float parser, which
/// would add 20 KB to the wasm module; readers compare doubles, so a number of more than 15
/// significant digits may equal another: see [`names_an_id`]).
fn loose_number(text: &str, prefix: bool) -> Option<Number> {
    const SPACE: [char; 6] = [' ', '\t', '\n', '\r', '\u{b}', '\u{c}'];
    let t = text.trim_start_matches(SPACE).as_bytes();
    let negative = t.first() == Some(&b'-');
    let mut at = usize::from(matches!(t.first(), Some(b'+' | b'-')));
    let run = |from: usize| {
        t.get(from..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
    };
    let int = t.get(at..at + run(at)).unwrap_or_default();
    at += int.len();
    let mut frac: &[u8] = &[];
    if t.get(at) == Some(&b'.') && (!int.is_empty() || run(at + 1) > 0) {
        frac = t.get(at + 1..at + 1 + run(at + 1)).unwrap_or_default();
        at += 1 + frac.len();
    }
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut exponent: i64 = 0;
    if matches!(t.get(at), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(t.get(at + 1), Some(b'+' | b'-')));
        let digits = t
            .get(at + 1 + sign..at + 1 + sign + run(at + 1 + sign))
            .unwrap_or_default();
        if !digits.is_empty() {
            // Beyond a few thousand, every such number is zero or infinite to a double anyway.
            exponent = digits
                .iter()
                .skip_while(|&&d| d == b'0')
                .take(6)
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
            if t.get(at + 1) == Some(&b'-') {
                exponent = -exponent;
            }
            at += 1 + sign + digits.len();
        }
    }
    let rest = std::str::from_utf8(t.get(at..).unwrap_or_default()).unwrap_or("x");
    if !prefix && !rest.trim_end_matches(SPACE).is_empty() {
        return None;
    }
    let all: Vec<u8> = int.iter().chain(frac).copied().collect();
    let Some(first) = all.iter().position(|&d| d != b'0') else {
        return Some((false, Vec::new(), 0)); // zero, whatever its sign
    };
    let mut digits: Vec<u8> = all.get(first..).unwrap_or_default().to_vec();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    let power = exponent + int.len() as i64 - first as i64 - 1;
    Some((negative, digits, power))
}

/// Whose rules rudder-server applies to an event, by its `provider`.
#[derive(Clone, Copy)]
enum Provider {
    /// `custom`: the destination's strategy (the route's `match` here).
    Custom,
    /// None, `""` or `oneTrust`: a destination with the older OneTrust setting
    /// (`oneTrustCookieCategories`) drops the event when any of its IDs is denied, whatever
    /// the event's `resolutionStrategy` says, so `or` counts for nothing.
    OneTrustOrNone,
    /// Any other: the event's `resolutionStrategy` (rudder-server's generic consent management).
    Other,
}

/// The `provider` value (see [`Provider`]), compared exactly as rudder-server compares it.
/// `Ok(None)` for a value that is not a string, or that some reader would take for `custom`
/// (see [`read_word`]). A value that a reader would take for `oneTrust` is read as it: that
/// only makes the decision stricter.
fn read_provider(s: &mut Scanner) -> Result<Option<Provider>, Invalid> {
    if s.peek_token() != Some(b'"') {
        s.skip_value()?;
        return Ok(None);
    }
    let value = s.string()?;
    if value.eq_str("custom") {
        return Ok(Some(Provider::Custom));
    }
    let decoded = value.decode();
    let cut = decoded.split('\0').next().unwrap_or_default();
    let symbol = decoded.strip_prefix(':');
    // A Java enum binder takes another spelling for the constant (Gson its name, `CUSTOM`;
    // Jackson's case-insensitive enums `Custom`) and digits for the constant at that place.
    if cut == "custom"
        || symbol == Some("custom")
        || enum_ordinal(&decoded)
        || names_a_value(&decoded, "custom")
    {
        return Ok(None);
    }
    let one_trust = |v: &str| v.is_empty() || names_a_value(v, "oneTrust");
    Ok(Some(
        match one_trust(&decoded) || one_trust(cut) || symbol.is_some_and(one_trust) {
            true => Provider::OneTrustOrNone,
            false => Provider::Other,
        },
    ))
}

/// A string value compared with `word`, exactly (as rudder-server compares it). `Ok(None)` for
/// a value that is not a string, or that a reader stopping at NUL, or one that turns Oj's
/// Symbols back into strings (`":custom"`), would take for `word`.
fn read_word(s: &mut Scanner, word: &str) -> Result<Option<bool>, Invalid> {
    if s.peek_token() != Some(b'"') {
        s.skip_value()?;
        return Ok(None);
    }
    let value = s.string()?;
    if value.eq_str(word) {
        return Ok(Some(true));
    }
    // Oj's Symbol `:custom` is `custom` to a reader that takes it `to_s`.
    let decoded = value.decode();
    if decoded.split('\0').next() == Some(word) || decoded.strip_prefix(':') == Some(word) {
        return Ok(None);
    }
    Ok(Some(false))
}

/// The `integrations` object, for `destination`: its entry and `All`, each `true`, `false` or an
/// object of options (on). `Ok(None)` for anything another reader could take otherwise: not an
/// object, either entry given twice or with another type (`"false"`, `0`, `null` are truthy or
/// falsy depending on the reader), or a key that a reader stopping at NUL takes for either.
/// Destination names are exact map keys in every reader.
fn read_integrations(s: &mut Scanner, destination: &str) -> Result<Option<Integrations>, Invalid> {
    if s.peek_token() != Some(b'{') {
        s.skip_value()?;
        return Ok(None);
    }
    let mut out = Integrations {
        present: true,
        ..Integrations::default()
    };
    let mut readable = true;
    if s.object_start()? {
        loop {
            let key = s.key()?;
            let slot = if key.eq_str(destination) {
                Some(&mut out.destination)
            } else if key.eq_str("All") {
                Some(&mut out.all)
            } else {
                let decoded = key.decode();
                // A key that makes a reader read the object otherwise (`__proto__`, `$ref`, …),
                // or that some reader takes for the route's entry or `All` (see
                // [`names_entry`]; Facade also reads `providers` as an object of entries).
                let names_destination =
                    !destination.is_empty() && names_entry(&key, &decoded, destination);
                readable &= !nameless(&decoded)
                    && !directive(decoded.as_bytes())
                    && !facade_folds(&decoded, "providers")
                    && !names_destination
                    && !names_entry(&key, &decoded, "All");
                None
            };
            match slot {
                Some(slot) => {
                    readable &= slot.is_none();
                    let on = match s.peek_token() {
                        // Options: on, unless a key in them makes a reader take the entry for
                        // another value (`{"$ref": "#/integrations/All"}` is `false` to a JSON
                        // reference reader), or there are none: `{}` is falsy to a receiver that
                        // tests the entry's truth (Python's dict, PHP's array).
                        Some(b'{') => match options_read_as_on(s)? {
                            true => Some(true),
                            false => None,
                        },
                        Some(b't' | b'f') => s.literal_word()?,
                        _ => {
                            s.skip_value()?;
                            None
                        }
                    };
                    match on {
                        Some(on) => *slot = Some(on),
                        None => readable = false,
                    }
                }
                None => s.skip_value()?,
            }
            if !s.object_more()? {
                break;
            }
        }
    }
    Ok(readable.then_some(out))
}

/// Reads the object at the cursor: whether every reader takes it for an entry that is on: not
/// empty, and none of its own keys a [`directive`].
fn options_read_as_on(s: &mut Scanner) -> Result<bool, Invalid> {
    Ok(own_keys(s, &|key| directive_key(key))? == Some(false))
}

/// Whether Facade takes `key` on `context`, which it reads as the event's options, for a switch
/// of `destination`: its entry, `all`, `providers` (an object of entries) and `providers.all`
/// (see [`facade_takes`]).
fn facade_switch(key: &str, destination: &str) -> bool {
    facade_takes(key, destination) || facade_takes(key, "all") || facade_takes(key, "providers.all")
}

/// Whether Facade's `obj-case`, looking `path` up, takes `key` for it or for its first segments
/// (it then reads on inside the key's value): it compares keys and paths with every character
/// but ASCII letters, digits and `.` dropped, without case, so `"Providers.ALL"` is
/// `providers.all` and `providers` its start.
fn facade_takes(key: &str, path: &str) -> bool {
    let mut key = folded_bytes(key.as_bytes());
    let mut path = folded_bytes(path.as_bytes());
    loop {
        match (key.next(), path.next()) {
            (None, None | Some(b'.')) => return true,
            (Some(k), Some(p)) if k == p => {}
            _ => return false,
        }
    }
}

/// Whether some reader takes the `integrations` key `key` (`text` decoded; not `name` exactly)
/// for the entry `name`: in another spelling (Facade's folding, Go's and jsoniter's case
/// folding: `M\u0130xpanel`, `Slac\u212a`; a key converter's, see [`spelled_alike`]), up to a
/// NUL, by goccy/go-json's escaped prefix, by jsoniter's hash (a struct of entries, see
/// [`jsoniter_hashes`]), or as a path to it (see [`path_to`]).
fn names_entry(key: &Str, text: &str, name: &str) -> bool {
    let before_nul = text.split('\0').next().unwrap_or_default();
    before_nul == name
        || hash_position(text.as_bytes(), &[jsoniter_hashes(name.as_bytes())]).is_some()
        || spelled_alike(text, name)
        || goccy_prefix(key, text, name)
        || path_to(text, name)
}

/// Whether a reader that looks values up by a path of keys takes `key` (not `name`) for a path
/// through `name`, or `name` for a path through `key`: lodash's `_.get` and `_.set` read the
/// first segment of `"Mixpanel.x"` or `"Mixpanel[0]"` (see [`first_segment`]), in any
/// spelling; stream-json's `pick` takes every key that starts with `name` and a dot for part of
/// `name`'s value; and a name with a dot is a path to them (lodash's `_.get` from the event's
/// root, dot-prop and object-path read `{"Customer": {"io": false}}` as `Customer.io`).
fn path_to(key: &str, name: &str) -> bool {
    let through_name = key.contains(['.', '[', ']', '"', '\''])
        && (key
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('.'))
            || spelled_alike(&first_segment(key), name));
    through_name
        || name.match_indices('.').any(|(at, _)| {
            name.get(..at)
                .is_some_and(|head| !head.is_empty() && (key == head || spelled_alike(key, head)))
        })
}

/// Whether a raw key may be Facade's spelling of `options`: most keys start with a letter or
/// digit other than `o`.
#[inline(always)]
fn may_be_options(raw: &[u8]) -> bool {
    raw.first()
        .is_some_and(|&b| b | 0x20 == b'o' || !b.is_ascii_alphanumeric())
}

/// [`facade_folds`] for a key as scanned (rare: see [`may_be_options`]).
#[inline(never)]
fn facade_folds_rare(key: &Str, name: &str) -> bool {
    facade_folds(&key.decode(), name)
}

fn folded_bytes(text: &[u8]) -> impl Iterator<Item = u8> + '_ {
    text.iter()
        .filter(|b| b.is_ascii_alphanumeric() || **b == b'.')
        .map(u8::to_ascii_lowercase)
}

/// Whether Segment's Facade (`obj-case`), which looks entries up with every character but ASCII
/// letters, digits and `.` removed and without case, takes `key` for `name`.
fn facade_folds(key: &str, name: &str) -> bool {
    folded_bytes(key.as_bytes()).eq(folded_bytes(name.as_bytes()))
}

/// The consented bits and those of categories also given in another spelling; `Ok(None)` for a
/// non-object or a required category given twice.
/// Category keys count only exactly (`advertising: true` is no consent to `Advertising`), but
/// readers find them otherwise: cJSON's `cJSON_GetObjectItem` without ASCII case, taking the
/// first; Go's `encoding/json` and Jackson, when the categories are a struct's fields, with Go's
/// folding, taking the last; key converters and Facade's `obj-case` by letters and digits alone.
/// So a key that is a required category in another spelling (see [`respelled_position`]),
/// anywhere, with another answer than the exact key (`true` or not), is a repeat. So is a key
/// that a NUL-stopping reader would read as a required category.
fn read_preferences(s: &mut Scanner, wanted: &Wanted) -> Result<Option<(u64, u64)>, Invalid> {
    let categories = wanted.categories;
    if s.peek_token() != Some(b'{') {
        s.skip_value()?;
        return Ok(None);
    }
    let mut consented = 0u64;
    let mut seen = 0u64;
    // Required categories given in another spelling, saying `true` or something else.
    let mut respelled_true = 0u64;
    let mut respelled_other = 0u64;
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
                    // One category holding the rest of another's name (`Ads` holding
                    // `{"Personalization": …}` beside `AdsPersonalization`): see below.
                    ambiguous |=
                        s.peek_token() == Some(b'{') && starts_a_category(&key, categories);
                    seen |= bit;
                    if s.value_is_true()? && exact {
                        consented |= bit;
                    }
                }
                _ => {
                    // A key that makes a reader read the object otherwise (`__proto__`, Oj's
                    // `^#1`, `json_class`, `$ref`, …), and Oj's Symbol `:Ads`, which is `Ads` to
                    // Rails' indifferent access.
                    ambiguous |= !key.raw().iter().any(u8::is_ascii_alphanumeric)
                        && nameless(&key.decode())
                        || directive_key(&key)
                        || symbol_position(&key, categories).is_some();
                    let respelled =
                        respelled_position(&key, wanted).and_then(|i| 1u64.checked_shl(i as u32));
                    match respelled {
                        Some(bit) if s.value_is_true()? => respelled_true |= bit,
                        Some(bit) => respelled_other |= bit,
                        None => {
                            // A key ending where a word of a category's name ends, holding
                            // the rest (`Ads` holding `{"Personalization": false}`, `ad`
                            // holding `{"storage": false}`): that category's column to a
                            // loader that snake-cases the joined path.
                            ambiguous |=
                                s.peek_token() == Some(b'{') && starts_a_category(&key, categories);
                            s.skip_value()?
                        }
                    }
                }
            }
            if !s.object_more()? {
                break;
            }
        }
    }
    // Some reader reads the other spelling: a repeat unless it says what the exact key says.
    ambiguous |= seen & ((respelled_true & !consented) | (respelled_other & consented)) != 0;
    Ok(if ambiguous {
        None
    } else {
        Some((consented, respelled_true | respelled_other))
    })
}

/// The required category that `key` (not one exactly) is another spelling of to some reader, if
/// any: another ASCII case (cJSON), Go's or Java's folding (`ſ`, `ı`, the Kelvin sign), the
/// same letters and digits without case once everything else is dropped (key converters,
/// Facade's `obj-case`), each up to a NUL too (C strings); an escaped key whose text starts the
/// name and whose raw length reaches it (goccy/go-json's field lookup); a key with the name's
/// jsoniter hash (a struct of the categories, see [`jsoniter_hashes`]).
#[inline(always)]
fn respelled_position(key: &Str, wanted: &Wanted) -> Option<usize> {
    let (categories, raw) = (wanted.categories, key.raw());
    if !wanted.plain_categories || key.is_escaped() {
        return respelled_rare(key, wanted);
    }
    // Hashing costs a multiplication per byte, one after the other: the usual names skip it.
    if !(wanted.usual_names_hashed_apart && usual_category(raw)) {
        if let Some(i) = hash_position(raw, wanted.category_hashes) {
            return Some(i);
        }
    }
    // A leading digit (see [`reduced`]), beyond ASCII or a character a library writes as a
    // word (a transliterating loader may write it as many letters), or a path to a name (see
    // [`path_to`]).
    if leading_digit(raw)
        || raw.iter().any(|&b| {
            b >= 0x80
                || writes_a_word(b)
                || matches!(b, b'.' | b'[' | b']' | b'\'' | b'+' | b'*' | b'@')
        })
    {
        return respelled_rare(key, wanted);
    }
    // An ASCII key spells no more letters than it has bytes: shorter than every name, it is
    // none.
    if categories.iter().all(|c| raw.len() < c.len()) {
        return None;
    }
    // An ASCII key spells a plain name in another case (of its length), or with other
    // characters between its letters and digits (longer).
    categories
        .iter()
        .position(|c| match raw.len().cmp(&c.len()) {
            Ordering::Less => false,
            Ordering::Equal => raw.eq_ignore_ascii_case(c.as_bytes()),
            Ordering::Greater => raw
                .iter()
                .filter(|b| b.is_ascii_alphanumeric())
                .map(u8::to_ascii_lowercase)
                .eq(c.bytes().map(|b| b.to_ascii_lowercase())),
        })
}

/// Whether `key` spells the start of a category's name up to where a word of it ends.
#[inline(never)] // rare: an object in `categoryPreferences`
fn starts_a_category(key: &Str, categories: &[String]) -> bool {
    let text = key.decode();
    categories.iter().any(|c| flattens_to(&text, &[c], true))
}

#[inline(never)] // rare: escaped keys, keys with other characters than letters and digits
fn respelled_rare(key: &Str, wanted: &Wanted) -> Option<usize> {
    let text = key.decode();
    hash_position(text.as_bytes(), wanted.category_hashes).or_else(|| {
        wanted
            .categories
            .iter()
            .position(|c| respelling(key, &text, c))
    })
}

/// Category names events carry most (Segment's consent tools' and OneTrust's, Google Consent
/// Mode's): a policy whose categories none of them shares a hash with lets them skip it.
pub const USUAL_CATEGORIES: [&str; 16] = [
    "Advertising",
    "Analytics",
    "Functional",
    "DataSharing",
    "Marketing",
    "Personalization",
    "Performance",
    "Targeting",
    "C0001",
    "C0002",
    "C0003",
    "C0004",
    "C0005",
    "ad_storage",
    "ad_user_data",
    "analytics_storage",
];

/// Whether a key is one of [`USUAL_CATEGORIES`] (one comparison: no two share a length and a
/// first byte but OneTrust's, which differ in their last).
#[inline(always)]
fn usual_category(key: &[u8]) -> bool {
    let candidate: &[u8] = match (key.len(), key.first()) {
        (11, Some(b'A')) => b"Advertising",
        (9, Some(b'A')) => b"Analytics",
        (10, Some(b'F')) => b"Functional",
        (11, Some(b'D')) => b"DataSharing",
        (9, Some(b'M')) => b"Marketing",
        (15, Some(b'P')) => b"Personalization",
        (11, Some(b'P')) => b"Performance",
        (9, Some(b'T')) => b"Targeting",
        (5, Some(b'C')) => {
            return key.starts_with(b"C000") && matches!(key.last(), Some(b'1'..=b'5'))
        }
        (10, Some(b'a')) => b"ad_storage",
        (12, Some(b'a')) => b"ad_user_data",
        (17, Some(b'a')) => b"analytics_storage",
        _ => return false,
    };
    same_bytes(key, candidate)
}

/// The name whose jsoniter hashes (`hashes`, see [`jsoniter_hashes`]) a key (its decoded bytes,
/// not a name exactly) has, if any.
#[inline(always)]
pub fn hash_position(key: &[u8], hashes: &[[u64; 2]]) -> Option<usize> {
    let key = jsoniter_hashes(key);
    hashes.iter().position(|h| hashes_meet(h, &key))
}

/// Whether `text` (the decoded `key`) spells the category `name` to some reader (and is not it).
fn respelling(key: &Str, text: &str, name: &str) -> bool {
    if text == name {
        return false;
    }
    let before_nul = text.split('\0').next().unwrap_or_default();
    spelled_alike(text, name)
        || (before_nul.len() < text.len() && spelled_alike(before_nul, name))
        || goccy_prefix(key, text, name)
        || path_to(text, name)
}

/// Whether some reader takes `key` for the name `name` (or the name for the key): Go's folding
/// (ASCII names), Facade's `obj-case` (ASCII letters and digits without case; a name without
/// any reads as every such key, which no check can tell apart, so it is left out), a key
/// converter's (Latin letters as lodash's `deburr` reads them, so accents and case are ignored).
pub fn spelled_alike(key: &str, name: &str) -> bool {
    let facade = |t: &str| folded_bytes(t.as_bytes()).next().is_some();
    key.eq_ignore_ascii_case(name)
        || (name.is_ascii() && folds_to(key, name))
        || (key.is_ascii() && folds_to(name, key))
        || (facade(name) && facade_folds(key, name))
        || {
            let spelled = spelling(key);
            !spelled.is_empty() && spelled.eq_ignore_ascii_case(&spelling(name))
        }
        || reduced(key).is_some_and(|r| spelling(&r).eq_ignore_ascii_case(&spelling(name)))
        || (transliterable(key) && transliterates_to_name(key, name))
}

/// goccy/go-json matches a key to a struct field by its decoded characters, without ASCII case,
/// but counts the key's length escapes and all: an escaped key whose text starts the name and
/// whose raw length reaches the name's is that field (`"c\u006f"` is `context`).
fn goccy_prefix(key: &Str, text: &str, name: &str) -> bool {
    key.is_escaped()
        && !text.is_empty()
        && key.raw().len() >= name.len()
        && name
            .as_bytes()
            .get(..text.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(text.as_bytes()))
}

/// The required category whose Symbol `key` (or a string value) is to Oj's object mode (`:Ads`),
/// if any.
// Inline natively (a call per key showed in the profile); one copy in the wasm module.
#[cfg_attr(not(target_arch = "wasm32"), inline(always))]
fn symbol_position(key: &Str, categories: &[String]) -> Option<usize> {
    let symbol = |text: &[u8]| {
        let name = text.strip_prefix(b":")?;
        categories.iter().position(|c| c.as_bytes() == name)
    };
    // Escapes anywhere are decoded first: `":Adv\u0065rtising"` is Oj's `:Advertising`.
    match (key.raw().first(), key.is_escaped()) {
        (Some(b':' | b'\\'), true) => symbol(key.decode().as_bytes()),
        (Some(b':'), false) => symbol(key.raw()),
        _ => None,
    }
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
            format: ConsentFormat::Segment,
            destination: None,
            plain_categories: plain_names(&categories),
            category_hashes: &categories
                .iter()
                .map(|c| jsoniter_hashes(c.as_bytes()))
                .collect::<Vec<_>>(),
            usual_names_hashed_apart: false,
        };
        let mut s = Scanner::new(body);
        let f = read_event(&mut s, &wanted, None)?;
        assert!(s.at_end());
        Ok(f)
    }

    fn consent(body: &str) -> Option<Consent> {
        let f = facts(body, &["A", "B"]).unwrap();
        f.readable.then_some(without_respellings(f.consent))
    }

    /// The consent, without which categories were also given in other spellings.
    fn without_respellings(c: Consent) -> Consent {
        match c {
            Consent::Preferences { consented, .. } => Consent::Preferences {
                consented,
                respelled: 0,
            },
            c => c,
        }
    }

    #[test]
    fn tells_which_categories_are_also_spelled_otherwise() {
        let f = facts(
            r#"{"context":{"consent":{"categoryPreferences":{"B":false,"A":true,"a":true,"b_":false}}}}"#,
            &["A", "B"],
        )
        .unwrap();
        assert!(f.readable);
        assert_eq!(
            f.consent,
            Consent::Preferences {
                consented: 0b01,
                respelled: 0b11
            }
        );
    }

    #[test]
    fn reads_consent_bits_for_required_categories_only() {
        let p = |consented| {
            Some(Consent::Preferences {
                consented,
                respelled: 0,
            })
        };
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
    fn a_required_category_in_another_spelling_with_another_answer_is_a_repeat() {
        let read = |prefs: &str| {
            let body = format!(r#"{{"context":{{"consent":{{"categoryPreferences":{prefs}}}}}}}"#);
            let f = facts(
                &body,
                &[
                    "Advertising",
                    "Publicit\u{e9}",
                    "Data Sharing",
                    "Data.Sharing",
                ],
            )
            .unwrap();
            f.readable.then_some(without_respellings(f.consent))
        };
        let p = |consented| {
            Some(Consent::Preferences {
                consented,
                respelled: 0,
            })
        };
        // Alone, another spelling is no consent: category keys count only exactly.
        assert_eq!(read(r#"{"advertising":true}"#), p(0));
        assert_eq!(
            read(r#"{"ADVERTISING":false,"Publicit\u00e9":true}"#),
            p(0b10)
        );
        // Before or after the exact key, with another answer: some reader reads that one
        // (cJSON the first without ASCII case; Go and Jackson, into a struct, the last with
        // Go's folding; key converters and Facade's obj-case by letters and digits).
        for prefs in [
            r#"{"advertising":false,"Advertising":true}"#,
            r#"{"Advertising":true,"ADVERTISING":false}"#,
            r#"{"Advertising":true,"ADVERTISING":null}"#,
            r#"{"advertising\u0000":false,"Advertising":true}"#,
            r#"{"ADVERTISING\u0000x":false,"Advertising":true}"#,
            r#"{"aDVERTISING":false,"Other":1,"ADVERTISING":true,"Advertising":true}"#,
            r#"{"\u0061dvertising":{},"Adv\u0065rtising":true}"#,
            r#"{"PUBLICIT\u00e9":false,"Publicit\u00e9":true}"#,
            r#"{"PUBLICIT\u00c9":false,"Publicit\u00e9":true}"#,
            r#"{"advertising":true,"Advertising":false}"#,
            r#"{"Advertising":true,"adverti\u017fing":false}"#,
            r#"{"Advertising":true,"Advert\u0131sing":false}"#,
            r#"{"Ad-vertising":false,"Advertising":true}"#,
            r#"{"Advertising":true,"advertising_":false}"#,
            r#"{"Advertising":true," Advertising":false}"#,
            r#"{"Advertising":true,"Advertising\u200b":false}"#,
            r#"{"Advertising":true,"\ufeffAdvertising":false}"#,
            r#"{"Advertising":true,"Advertising\u00e9":false}"#,
            r#"{"Advertising":true,"Ad\u0307vertising":false}"#,
            r#"{"Advertising":true,"\u0061\u0064":false}"#,
            r#"{"Advertising":true,"\u0041dvertisin":false}"#,
            r#"{"Data Sharing":true,"dataSharing":false}"#,
            r#"{"data_sharing":false,"Data Sharing":true}"#,
            // Paths to the category: stream-json's `pick` takes `Advertising.x` for part of
            // `Advertising`, lodash the first segment of a path.
            r#"{"Advertising.x":false,"Advertising":true}"#,
            r#"{"Advertising":true,"Advertising..x":false}"#,
            r#"{"Advertising":true,"Advertising.":false}"#,
            r#"{"Advertising":true,"advertising[0]":false}"#,
            r#"{"Advertising":true,"[Advertising]":false}"#,
            r#"{"Advertising":true,"'Advertising'.x":false}"#,
            r#"{"Advertising":true,"Adv\u0065rtising.x":false}"#,
            r#"{"Publicit\u00e9.0":false,"Publicit\u00e9":true}"#,
            r#"{"Data Sharing.x":false,"Data Sharing":true}"#,
            // A name with a dot is a path to the keys before it (lodash from the event's root,
            // dot-prop, object-path).
            r#"{"Data.Sharing":true,"Data":{"Sharing":false}}"#,
            r#"{"data":{"Sharing":false},"Data.Sharing":true}"#,
            // dlt writes `|` as `l`, `+` and `*` as `x`, `@` as `a`.
            r#"{"Data Sharing":true,"D@ta Sharing":false}"#,
        ] {
            assert_eq!(read(prefs), None, "{prefs}");
        }
        // The same answer from both: every reader reads it alike.
        assert_eq!(read(r#"{"advertising":true,"Advertising":true}"#), p(1));
        assert_eq!(read(r#"{"Advertising":true,"ad_vertising":true}"#), p(1));
        assert_eq!(read(r#"{"ADVERTISING":"no","Advertising":false}"#), p(0));
        // Other letters are other categories.
        assert_eq!(read(r#"{"Advertisings":false,"Advertising":true}"#), p(1));
        assert_eq!(read(r#"{"Advertising":true,"Ad":false}"#), p(1));
        assert_eq!(read(r#"{"Advertising":true,"\u0061d":false}"#), p(1));
        assert_eq!(read(r#"{"Advertising":true,"Advertisin":false}"#), p(1));
        assert_eq!(read(r#"{"Advertising":true,"Data":false}"#), p(1));
        assert_eq!(read(r#"{"Advertising":true,"x.Advertising":false}"#), p(1));
        assert_eq!(read(r#"{"Advertising":true,"Advertising.x":true}"#), p(1));
        assert_eq!(read(r#"{"Advertising.x":true}"#), p(0));
        // Names without ASCII letters or digits: Facade's obj-case reads every such key alike
        // (it keeps none of their characters), so it is left out; other names are other
        // categories to every other reader.
        let cjk = |prefs: &str| {
            let body = format!(r#"{{"context":{{"consent":{{"categoryPreferences":{prefs}}}}}}}"#);
            let f = facts(&body, &["\u{5e83}\u{544a}"]).unwrap();
            f.readable.then_some(without_respellings(f.consent))
        };
        assert_eq!(cjk(r#"{"\u5e83\u544a":true,"\u5206\u6790":false}"#), p(1));
        assert_eq!(
            cjk("{\"\u{5206}\u{6790}\":false,\"\u{5e83}\u{544a}\":true}"),
            p(1)
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
    fn usual_category_names_are_told_in_one_comparison() {
        for name in USUAL_CATEGORIES {
            assert!(usual_category(name.as_bytes()), "{name}");
            let mut other = name.as_bytes().to_vec();
            for i in 0..other.len() {
                let was = other[i];
                other[i] = b'x';
                assert!(!usual_category(&other), "{other:?}");
                other[i] = was;
            }
            assert!(!usual_category(format!("{name}x").as_bytes()));
            assert!(!usual_category(name.get(1..).unwrap_or("").as_bytes()));
        }
        for other in ["C0000", "C0006", "C000", "C00011", "c0001", "advertising"] {
            assert!(!usual_category(other.as_bytes()), "{other}");
        }
        // A policy whose category shares a hash with a usual name hashes every key.
        let apart = |c: &str| {
            crate::policy::RoutePolicy::new(vec![c.into()], crate::policy::Match::All)
                .usual_names_hashed_apart
        };
        assert!(apart("Advertising") && apart("C0004") && apart("Ads"));
        assert!(!apart("analytics") && !apart("AD_STORAGE"));
    }

    #[test]
    fn loose_numbers_are_equal_as_doubles_are() {
        // PHP's numeric strings, against Rust's own reading of them as doubles.
        let mut texts = vec![
            " 5".to_string(),
            "5 ".into(),
            "\n5".into(),
            "+5".into(),
            "5.".into(),
        ];
        for int in ["", "0", "5", "05", "50", "500", "12"] {
            for frac in ["", ".", ".0", ".5", ".50", ".05"] {
                for exp in ["", "e0", "e1", "E-1", "e+2", "e-3"] {
                    for sign in ["", "-"] {
                        texts.push(format!("{sign}{int}{frac}{exp}"));
                    }
                }
            }
        }
        let double = |t: &str| {
            let t = t.trim();
            let mantissa = t.split(['e', 'E']).next().unwrap_or_default();
            if !mantissa.bytes().any(|b| b.is_ascii_digit()) {
                return None;
            }
            let t = t
                .strip_suffix('.')
                .map_or(t.to_string(), |i| format!("{i}.0"));
            t.replace(".e", ".0e")
                .replace(".E", ".0E")
                .parse::<f64>()
                .ok()
        };
        let mut compared = 0;
        for a in &texts {
            for b in &texts {
                let (Some(x), Some(y)) = (double(a), double(b)) else {
                    continue;
                };
                let (Some(p), Some(q)) = (loose_number(a, false), loose_number(b, false)) else {
                    panic!("{a:?} or {b:?} is a number");
                };
                assert_eq!(p == q, x == y, "{a:?} {b:?}");
                compared += 1;
            }
        }
        assert!(compared > 100_000, "{compared}");
        for not in ["", ".", "e5", "-", "x5", "5x", "0x5", "5e", "--5"] {
            assert!(loose_number(not, false).is_none(), "{not:?}");
        }
        assert_eq!(loose_number("5abc", true), loose_number("5", false));
        assert_eq!(loose_number("5e", true), loose_number("5", false));
    }

    /// Keys with jsoniter's hash of a field name, found by lattice reduction, each checked to
    /// decode as that field with json-iterator/go 1.1.12 (a one-field struct tagged with the
    /// name): `exact` under `CaseSensitive`; `folded` under its default, which matches by hash
    /// the structs whose names are all lower case (the camelCase ones collide all the same).
    #[test]
    fn a_key_with_a_fields_jsoniter_hash_is_a_lookalike() {
        let keys: serde_json::Value =
            serde_json::from_str(include_str!("../tests/support/jsoniter_keys.json")).unwrap();
        let mut checked = 0;
        for (mode, which) in [("folded", 0), ("exact", 1)] {
            for (name, key) in keys[mode].as_object().unwrap() {
                let key = key.as_str().unwrap();
                let field = Name::new(Box::leak(name.clone().into_boxed_str()));
                assert_ne!(key, name);
                assert_eq!(
                    jsoniter_hashes(key.as_bytes())[which],
                    field.hashes[which],
                    "{mode} {name}"
                );
                let literal = serde_json::to_string(key).unwrap();
                let read = Scanner::new(&literal).string().unwrap();
                assert_eq!(match_key(&read, &[field]), KeyMatch::Lookalike, "{name}");
                checked += 1;
            }
        }
        assert_eq!(checked, 24);
        // Their neighbours, and ordinary keys, are other keys.
        let other = |key: &str| match_key(&Scanner::new(key).string().unwrap(), &NAMES);
        for key in [
            r#""userId""#,
            r#""messageId""#,
            r#""properties""#,
            r#""contexts""#,
        ] {
            assert_eq!(other(key), KeyMatch::Other, "{key}");
        }
        let near = serde_json::to_string(&format!("{}x", keys["folded"]["type"].as_str().unwrap()));
        assert_eq!(other(&near.unwrap()), KeyMatch::Other);
    }

    /// Every field name the decision reads.
    const ALL_NAMES: [&str; 12] = [
        "context",
        "type",
        "event",
        "batch",
        "integrations",
        "consent",
        "consentManagement",
        "categoryPreferences",
        "deniedConsentIds",
        "allowedConsentIds",
        "provider",
        "resolutionStrategy",
    ];

    #[test]
    fn the_common_keys_skip_checks_they_would_pass() {
        let all: Vec<Name> = ALL_NAMES.iter().map(|n| Name::new(n)).collect();
        let mut skipped = 0;
        for key in [
            "userId",
            "anonymousId",
            "messageId",
            "timestamp",
            "originalTimestamp",
            "sentAt",
            "receivedAt",
            "properties",
            "traits",
            "library",
            "page",
            "userAgent",
            "ip",
            "locale",
            "version",
            "name",
            "channel",
            "groupId",
            "previousId",
            "writeKey",
            "integrations",
        ] {
            assert!(common_key(key.as_bytes()), "{key}");
            // Against every other field: a key that is a field's name is matched exactly first.
            let others: Vec<Name> = all.iter().copied().filter(|n| n.text != key).collect();
            assert!(!jsoniter_takes(key.as_bytes(), &others), "{key}");
            assert!(!loosely_named(key.as_bytes(), &others), "{key}");
            skipped += 1;
        }
        // Any other spelling is checked.
        for other in ["userID", "userid", "user_Id", "pages", "ia", "properties_"] {
            assert!(!common_key(other.as_bytes()), "{other}");
        }
        assert!(jsoniter_takes(b"userID", &[Name::new("userid")]));
        assert_eq!(skipped, 21);
    }

    #[test]
    fn other_spellings_and_paths_of_a_field_are_lookalikes() {
        let key = |text: &str| match_key(&Scanner::new(text).string().unwrap(), &NAMES);
        let consent = [Name::new("consent"), Name::new("categoryPreferences")];
        let in_consent = |text: &str| match_key(&Scanner::new(text).string().unwrap(), &consent);
        for text in [
            r#""type_""#,
            r#""_type""#,
            r#""$type""#,
            r#""Event_""#,
            r#""con-text""#,
            r#""con text""#,
            r#""context.consent""#,
            r#""context.consent.categoryPreferences.Advertising""#,
            r#""context[consent]""#,
            r#""Context.x""#,
            r#""type.x""#,
            r#""b.a.t.c.h""#,
            r#"".type""#,
            r#""c\u006fntext_""#,
            r#""\u0130ntegrations.x""#,
            // Separators, white space and marks beyond ASCII, accented letters (key converters).
            r#""type\u00a0""#,
            r#""con\u3000text""#,
            r#""t\u00fdpe""#,
            r#""ty\u0301pe""#,
            "\"\u{167}ype\"",
            "\"c\u{f8}ntext\"",
            r#""ev\u0113nt""#,
            // What transliterating loaders write as the name: look-alikes in other scripts,
            // Latin letters beyond Extended-A, fullwidth forms, a syllable in a Latin key.
            r#""cont\u0435xt""#,
            r#""\u043a\u043e\u043d\u0442\u0435\u043a\u0441\u0442""#,
            r#""\u03c4ype""#,
            r#""t\u1e8fpe""#,
            r#""\uff43\uff4f\uff4e\uff54\uff45\uff58\uff54""#,
            "\"ev\u{30a8}nt\"",
            // lodash's path grammar (`_.get`, `_.set`).
            r#""[context].consent.categoryPreferences.Advertising""#,
            r#""[\"context\"][\"consent\"]""#,
            r#""['context'].consent""#,
            r#""context]consent]categoryPreferences.Advertising""#,
            r#""[\"con\\text\"].consent""#,
            // A NUL is dropped by a key converter like any separator.
            r#""con\u0000text""#,
            r#""\u0000context""#,
            r#""t\u0000ype""#,
        ] {
            assert_eq!(key(text), KeyMatch::Lookalike, "{text}");
        }
        for text in [
            r#""category_preferences""#,
            r#""category-preferences""#,
            r#""CATEGORY_PREFERENCES""#,
            r#""categoryPreferences.Advertising""#,
            r#""consent.categoryPreferences""#,
            r#""con\u017f_ent""#,
            r#""category\u00a0preferences""#,
            r#""category\u2010preferences""#,
            r#""category\uff3fpreferences""#,
            r#""category\u00a0Preferences""#,
            "\"con\u{17f}ent_\"",
        ] {
            assert_eq!(in_consent(text), KeyMatch::Lookalike, "{text}");
        }
        // Keys that merely start or end like a field are other keys.
        for text in [
            r#""types""#,
            r#""event_id""#,
            r#""eventName""#,
            r#""contexts.x""#,
            r#""x.context""#,
            r#""my_context""#,
            r#""batch_size""#,
            r#""x[context]""#,
            // Other scripts, wholly far from Latin.
            "\"\u{5e83}\u{544a}\"",
            "\"\u{30da}\u{30fc}\u{30b8}\"",
        ] {
            assert!(key(text).is_other(), "{text}");
        }
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
            // Flatteners add no prefix for an empty key: its members become the object's own.
            r#"{"context":{"consent":{"categoryPreferences":{"A":true}}},"":{"context":{}}}"#,
            r#"{"context":{"":{"consent":{}},"consent":{"categoryPreferences":{"A":true}}}}"#,
            r#"{"context":{"consent":{"":{},"categoryPreferences":{"A":true}}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true,"":{"A":false}}}}}"#,
            // Flatteners join nested keys with a separator: these are the same column.
            r#"{"context":{"consent":{"categoryPreferences":{"A":true}}},"context_consent_categoryPreferences_A":false}"#,
            r#"{"context_consent":{"categoryPreferences":{"A":false}},"context":{"consent":{"categoryPreferences":{"A":true}}}}"#,
            r#"{"context":{"consent_categoryPreferences":{"A":false},"consent":{"categoryPreferences":{"A":true}}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true},"categoryPreferences_A":false}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true},"categorypreferences/a":false}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true},"categoryPreferences__A":false}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true},"categoryPreferences:A":false}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true}},"consentManagement_deniedConsentIds":["A"]}}"#,
            r#"{"CONTEXT-CONSENT":{},"context":{"consent":{"categoryPreferences":{"A":true}}}}"#,
            r#"{"context\u005fconsent":{},"context":{"consent":{"categoryPreferences":{"A":true}}}}"#,
            // Snake-casing warehouse loaders (RudderStack's) drop all but letters and digits.
            r#"{"context":{"consent":{"categoryPreferences":{"A":true}},"consent_category_preferences_a":false}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true}},"consent_category_preferences":{"a":false}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true}},"consent category preferences a":false}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true}},"Consent-Category-Preferences-A":false}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true}},"consent~categoryPreferences~A":false}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true},"category_preferences_a":false}}}"#,
            r#"{"context_consent_category_preferences_a":false,"context":{"consent":{"categoryPreferences":{"A":true}}}}"#,
            r#"{"context":{"consentManagement":{"deniedConsentIds":[]},"consent_management_denied_consent_ids":["A"]}}"#,
            // Keys without a letter or digit add nothing to a column's name.
            r#"{"context":{"consent":{"categoryPreferences":{"A":true}}," ":{"consent":{}}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true},"_":{}}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true," ":{"A":false}}}}}"#,
            r#"{"context":{"consent":{"categoryPreferences":{"A":true,"-":false}}}}"#,
            r#"{"\u00a0":{},"context":{"consent":{"categoryPreferences":{"A":true}}}}"#,
            // dlt writes `+` and `*` as `x`, `@` as `a`, `|` as `l`.
            r#"{"conte+t":{},"context":{"consent":{"categoryPreferences":{"A":true}}}}"#,
            r#"{"conte*t_consent":{},"context":{"consent":{"categoryPreferences":{"A":true}}}}"#,
            r#"{"context":{"consent":{"c@tegoryPreferences":{},"categoryPreferences":{"A":true}}}}"#,
        ] {
            assert_eq!(consent(body), None, "{body}");
        }
        // Keys with separators that join nothing the decision reads are other keys, and so are
        // keys in other scripts.
        assert!(consent(
            "{\"\u{5e83}\u{544a}\":1,\"context\":{\"\u{30da}\u{30fc}\u{30b8}\":{},\"consent\":{\"categoryPreferences\":{\"A\":true,\"\u{5206}\u{6790}\":false}}}}"
        )
        .is_some());
        assert!(consent(
            r#"{"event_id":"x","context_id":1,"user_id":"u","anonymous_id":"a","type_version":2,"context":{"page_url":"x","consent_version":2,"consent":{"categoryPreferences":{"A":true,"B_x":false},"categoryPreferences_version":1}}}"#
        )
        .is_some());
        // A key no route needs may repeat, in any case: nobody reads it for the decision.
        assert!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{"C":true,"C":false}}}}"#)
                .is_some()
        );
        assert!(consent(r#"{"userId":"a","UserId":"b","context":{"Ip":1,"ip":2}}"#).is_some());
        // A struct's fields are found without case (Go, Jackson): another case of a required
        // category, saying otherwise, is a repeat; alone it is no consent.
        assert_eq!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{"A":true,"a":false}}}}"#),
            None
        );
        assert_eq!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{"a":true}}}}"#),
            Some(Consent::Preferences {
                consented: 0,
                respelled: 0
            })
        );
    }

    #[test]
    fn folds_keys_as_case_insensitive_readers_do() {
        assert!(folds_to("Context", "context"));
        assert!(folds_to("CONTEXT", "context"));
        assert!(folds_to("con\u{17f}ent", "consent"));
        assert!(folds_to("\u{212a}ey", "key"));
        assert!(folds_to("BATCH", "batch"));
        assert!(folds_to("den\u{131}edConsentIds", "deniedConsentIds"));
        assert!(folds_to("\u{130}ntegrations", "integrations"));
        assert!(folds_to("PROV\u{131}DER", "provider"));
        assert!(!folds_to("contexts", "context"));
        assert!(!folds_to("contex", "context"));
        assert!(!folds_to("cont\u{0435}xt", "context")); // Cyrillic e: no reader folds it
        assert!(!folds_to("\u{131}d", "jd"));
        assert!(!folds_to("type_", "type"));
    }

    #[test]
    fn tells_event_fields_from_a_batch_envelope() {
        let top = |body: &str| {
            let wanted = Wanted {
                categories: &[],
                always_allow: &[],
                format: ConsentFormat::Segment,
                destination: None,
                plain_categories: true,
                category_hashes: &[],
                usual_names_hashed_apart: true,
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
