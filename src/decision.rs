//! The allow/deny decision for one request body, single event or batch. Host-free: the glue hands
//! in the bytes and the route's policy, and carries out the returned [`Judgement`].

use crate::batch::{self, Item};
use crate::config::{BatchMode, Config, MissingConsent};
use crate::encoding::{DecodeError, Encoding};
use crate::event::{
    plain_names, read_event, Call, Consent, ConsentFormat, EventFacts, Spellings, Strategy, Wanted,
};
use crate::json::{Invalid, Scanner};
use crate::policy::{Match, RoutePolicy, MAX_CATEGORIES};
use crate::target::{hides_a_query, is_unreserved, percent_decode, Endpoint};

/// Why an event (or a whole request) was not forwarded as it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    FilteredByEndUserConsent,
    MissingConsent,
    /// The event's `integrations` object turns the route's destination off.
    FilteredByIntegrations,
    InvalidEvent,
    BodyTooLarge,
    UnsupportedContentEncoding,
    RouteConfigError,
    /// The host refused an operation the decision needed (the request is refused, not forwarded).
    InternalError,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::FilteredByEndUserConsent,
        Reason::MissingConsent,
        Reason::FilteredByIntegrations,
        Reason::InvalidEvent,
        Reason::BodyTooLarge,
        Reason::UnsupportedContentEncoding,
        Reason::RouteConfigError,
        Reason::InternalError,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::FilteredByEndUserConsent => "FILTERED_BY_END_USER_CONSENT",
            Reason::MissingConsent => "MISSING_CONSENT",
            Reason::FilteredByIntegrations => "FILTERED_BY_INTEGRATIONS",
            Reason::InvalidEvent => "INVALID_EVENT",
            Reason::BodyTooLarge => "BODY_TOO_LARGE",
            Reason::UnsupportedContentEncoding => "UNSUPPORTED_CONTENT_ENCODING",
            Reason::RouteConfigError => "ROUTE_CONFIG_ERROR",
            Reason::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Position in [`Reason::ALL`], for per-reason counts.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The local reply status for this reason.
    pub fn status(self, config: &Config) -> u16 {
        match self {
            Reason::FilteredByEndUserConsent
            | Reason::MissingConsent
            | Reason::FilteredByIntegrations => config.deny_status,
            Reason::InvalidEvent => 400,
            Reason::BodyTooLarge => 413,
            Reason::UnsupportedContentEncoding => 415,
            Reason::RouteConfigError | Reason::InternalError => 500,
        }
    }
}

/// What happens to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward the client's bytes untouched.
    Forward,
    /// Forward this body instead (a batch with some items dropped; encoded like the original).
    Rewrite(Vec<u8>),
    /// Answer locally; the upstream sees nothing.
    Reply(Reason),
}

/// The decision for one request, with what an auditor needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub action: Action,
    /// True when the body was a `/v1/batch`-style batch.
    pub is_batch: bool,
    /// Events judged: 1 for a single event (or an empty body), the item count for a batch.
    pub events: u32,
    /// Events not forwarded.
    pub dropped: u32,
    /// `dropped` split by reason, indexed by [`Reason::index`].
    pub dropped_by_reason: [u32; Reason::ALL.len()],
    /// Bits of the policy's categories that a dropped event had not consented to.
    pub denied_categories: u64,
    /// Per policy category (same index): how many dropped events had not consented to it.
    pub category_denials: [u32; MAX_CATEGORIES],
}

impl Judgement {
    /// Forwarding `events` events untouched, nothing dropped yet.
    fn forward(is_batch: bool, events: u32) -> Judgement {
        Judgement {
            action: Action::Forward,
            is_batch,
            events,
            dropped: 0,
            dropped_by_reason: [0; Reason::ALL.len()],
            denied_categories: 0,
            category_denials: [0; MAX_CATEGORIES],
        }
    }

    /// A whole request refused before any event could be read.
    pub fn refused(reason: Reason) -> Judgement {
        let mut j = Judgement::forward(false, 1);
        j.action = Action::Reply(reason);
        count_drop(&mut j, reason, 0);
        j
    }

    /// The reason named in the record: the reply's, or for a rewrite the most common drop reason.
    pub fn reason(&self) -> Option<Reason> {
        match self.action {
            Action::Reply(r) => Some(r),
            Action::Rewrite(_) => most_common(&self.dropped_by_reason),
            Action::Forward => None,
        }
    }
}

/// One event's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// `missing`: the policy's categories that were not consented.
    Deny {
        reason: Reason,
        missing: u64,
    },
}

/// The request as the decision sees it.
pub struct Request<'r> {
    pub config: &'r Config,
    pub policy: &'r RoutePolicy,
    /// The `content-encoding` header, if any.
    pub content_encoding: Option<&'r str>,
    /// The `:path`: the endpoint names the kind of call (`/v1/track`, `/v1/batch`).
    pub path: &'r str,
    /// The request carries `Sec-GPC: 1`.
    pub gpc: bool,
    /// Some receiver reads the body as a form ([`Encoding::is_form`]).
    pub form: bool,
    /// A CORS preflight ([`crate::host::RequestHeaders::is_cors_preflight`]).
    pub preflight: bool,
}

/// Decides a complete request body.
pub fn judge(req: &Request, raw: &[u8]) -> Judgement {
    let config = req.config;
    let Some(encoding) = Encoding::from_header(req.content_encoding) else {
        return Judgement::refused(Reason::UnsupportedContentEncoding);
    };
    if raw.len() > config.max_body_bytes {
        return Judgement::refused(Reason::BodyTooLarge);
    }
    // Segment's and RudderStack's pixel APIs read the event from the query string
    // (`/v1/pixel/track?data=…`, or field by field: `?event=…&properties.x=…`) and ignore any
    // body: an event the filter cannot judge, so a query that may carry one is refused, with a
    // body or without. A body may come with its write key alone (RudderStack's beacon requests:
    // `/beacon/v1/batch?writeKey=…`).
    match query(req.path) {
        Query::Empty => {}
        Query::WriteKey if !raw.is_empty() => {}
        Query::WriteKey | Query::Other => return Judgement::refused(Reason::InvalidEvent),
    }
    if raw.is_empty() {
        // A browser's CORS preflight carries no event: refused, it would keep every event of
        // the page's SDK from being sent, consented or not.
        if req.preflight {
            return Judgement::forward(false, 0);
        }
        // No body at all: no consent either, and nothing that could be read two ways.
        return single(req, EventFacts::EMPTY, false);
    }
    let decoded;
    let plain: &[u8] = if encoding == Encoding::Identity {
        raw
    } else {
        decoded = match encoding.decode(raw, config.max_body_bytes) {
            Ok(d) => d,
            Err(DecodeError::TooLarge) => return Judgement::refused(Reason::BodyTooLarge),
            Err(DecodeError::Corrupt) => return Judgement::refused(Reason::InvalidEvent),
        };
        &decoded
    };
    let Some(text) = crate::json::utf8(plain) else {
        return Judgement::refused(Reason::InvalidEvent);
    };
    // Receivers that parse the body by its declared type read a form body's `&`-separated
    // fields, not its JSON: fields hidden in a JSON string are an event to them.
    if req.form && form_has_event_fields(text) {
        return Judgement::refused(Reason::InvalidEvent);
    }
    let wanted = Wanted {
        categories: &req.policy.categories,
        always_allow: &config.always_allow_events,
        format: config.consent_format,
        destination: req.policy.destination.as_deref(),
        plain_categories: plain_names(&req.policy.categories),
        category_hashes: &req.policy.category_hashes,
        usual_names_hashed_apart: req.policy.usual_names_hashed_apart,
    };
    let mut items: Vec<Item> = Vec::new();
    let top = match read_body(text, &wanted, &mut items, config.max_batch_items) {
        Ok(top) => top,
        Err(BodyError::TooManyItems) => return Judgement::refused(Reason::BodyTooLarge),
        Err(BodyError::Invalid) => return Judgement::refused(Reason::InvalidEvent),
    };
    // Receivers that trust the endpoint read the kind of call from the path, the others from
    // the body: where the two disagree, the body means different things to different readers.
    let endpoint = Endpoint::of_path(req.path);
    match (top.batch, endpoint) {
        (_, Endpoint::Conflicting) => Judgement::refused(Reason::InvalidEvent),
        (None, Endpoint::Batch) => Judgement::refused(Reason::InvalidEvent),
        (None, Endpoint::Single(call)) if top.call.is_some_and(|c| c != call) => {
            Judgement::refused(Reason::InvalidEvent)
        }
        (None, _) => {
            let track_endpoint =
                matches!(endpoint, Endpoint::Unnamed | Endpoint::Single(Call::Track));
            single(req, top, track_endpoint)
        }
        (Some(_), Endpoint::Single(_)) => Judgement::refused(Reason::InvalidEvent),
        // A batch envelope with event fields is also a single event to some readers.
        (Some(_), _) if top.has_event_fields || !top.readable => {
            Judgement::refused(Reason::InvalidEvent)
        }
        (Some(array), _) => judge_batch(req, encoding, plain, &top, &items, array),
    }
}

/// What a request's query string may carry.
#[derive(Debug, PartialEq, Eq)]
enum Query {
    /// No query, or `?` alone.
    Empty,
    /// `writeKey=<key>` and nothing else, the key of unreserved characters only (as write keys
    /// are): nothing a reader could take for an event or another parameter (`;` as a separator,
    /// escapes decoded before splitting).
    WriteKey,
    /// Anything else: possibly an event.
    Other,
}

fn query(path: &str) -> Query {
    // A fragment (`#`, which clients do not send, and Envoy refuses) is never a write key alone:
    // some reader may take what follows it for a query; nor is a query hidden in `%3F`, nor
    // what follows a `;` (Fastify 4's router ends the path there, as at `?`).
    let path_part = path.split('?').next().unwrap_or_default();
    if path.contains('#') || path_part.contains(';') || hides_a_query(path) {
        return Query::Other;
    }
    let Some((_, query)) = path.split_once('?') else {
        return Query::Empty;
    };
    if query.is_empty() {
        return Query::Empty;
    }
    match query.strip_prefix("writeKey=") {
        Some(key) if key.bytes().all(is_unreserved) => Query::WriteKey,
        _ => Query::Other,
    }
}

/// The fields a form reader could build an event from: an event's identity and content, a
/// batch, and the pixel APIs' base64 `data`.
const EVENT_FIELDS: [&str; 12] = [
    "type",
    "event",
    "userId",
    "anonymousId",
    "previousId",
    "groupId",
    "traits",
    "properties",
    "context",
    "integrations",
    "batch",
    "data",
];

/// Whether a form reader (Express's `urlencoded()`, Go's `ParseForm`, Flask's `request.form`,
/// PHP, Rack) finds one of [`EVENT_FIELDS`] in `text`: fields split at `&` (and at `;`, as older
/// readers did), each name `+`- and percent-decoded, then read as each reader names it (see
/// [`form_names`]) and compared without case, or spelled as key converters spell it
/// (`user_id`, `_type`, `%22type`: see [`Spellings`]).
fn form_has_event_fields(text: &str) -> bool {
    // The first field of a JSON body starts with the JSON itself (`{"batch":[…`): once a `:`
    // is in it, not a name any converter spells (`{"type=…`, before any `:`, is one).
    let json_start = text.trim_start().starts_with('{');
    text.split(['&', ';']).enumerate().any(|(at, field)| {
        let raw = field
            .split('=')
            .next()
            .unwrap_or_default()
            .replace('+', " ");
        let json = at == 0 && json_start && raw.contains(':');
        // As form readers decode a name: `+` is a space, `%XX` a byte; qs keeps a name whose
        // escapes are not UTF-8 (`%batch`) as it is.
        let decoded = percent_decode(&raw);
        [decoded.as_slice(), raw.as_bytes()].iter().any(|name| {
            form_names(name).iter().any(|base| {
                let base = base.trim_ascii();
                // Spelled again per name: the form rule's path is rare, and one `Spellings` for
                // the twelve made the wasm module 2 KB larger.
                EVENT_FIELDS.iter().any(|f| {
                    base.eq_ignore_ascii_case(f.as_bytes())
                        || (!json && Spellings::of(&String::from_utf8_lossy(base)).spell(f))
                })
            })
        })
    })
}

/// The top-level names form readers take a decoded field name for: up to its first `[` or `.`
/// (`batch[0][type]`, `context.consent`: Express's qs, Go, Flask), cut at a NUL (C strings);
/// Rack's, past any leading `[` and `]` up to the next one (`[type]`, `]type`: qs reads a
/// leading `[type]` alike); PHP's, up to a `[` that a `]` closes (PHP also turns `.`, spaces
/// and an unclosed `[` into `_`: `user.id` and `user[id` are `user_id`, which the spelling of
/// the name as it is finds too); and the whole name, NUL and all.
fn form_names(whole: &[u8]) -> [&[u8]; 4] {
    fn cut(text: &[u8], stop: fn(&u8) -> bool) -> &[u8] {
        text.split(stop).next().unwrap_or_default()
    }
    let name = cut(whole, |b| *b == 0);
    let plain = cut(name, |b| matches!(b, b'[' | b'.'));
    let start = name
        .iter()
        .position(|b| !matches!(b, b'[' | b']'))
        .unwrap_or(name.len());
    let rack = cut(name.get(start..).unwrap_or_default(), |b| {
        matches!(b, b'[' | b']')
    });
    let php = match name.iter().position(|b| *b == b'[') {
        Some(at) if name.get(at..).is_some_and(|r| r.contains(&b']')) => {
            name.get(..at).unwrap_or_default()
        }
        _ => name,
    };
    // A key converter drops a NUL with other separators (`%00type` is `type` to lodash).
    [plain, rack, php, whole]
}

enum BodyError {
    Invalid,
    TooManyItems,
}

/// Scans the whole body: one JSON object, nothing after it. Batch items are collected as met,
/// at most `max_items` of them (the scan stops at the next one).
fn read_body(
    text: &str,
    wanted: &Wanted,
    items: &mut Vec<Item>,
    max_items: usize,
) -> Result<EventFacts, BodyError> {
    let mut s = Scanner::new(text);
    if s.peek_token() != Some(b'{') {
        return Err(BodyError::Invalid);
    }
    let mut too_many = false;
    let mut visit = |s: &mut Scanner, start: usize| -> Result<(), Invalid> {
        if items.len() >= max_items {
            too_many = true;
            return Err(Invalid);
        }
        let facts = if s.peek_token() == Some(b'{') {
            Some(read_event(s, wanted, None)?)
        } else {
            s.skip_value()?;
            None
        };
        items.push(Item {
            start,
            end: s.pos(),
            facts,
        });
        Ok(())
    };
    let top = read_event(&mut s, wanted, Some(&mut visit));
    match top {
        Err(_) if too_many => Err(BodyError::TooManyItems),
        Err(_) => Err(BodyError::Invalid),
        Ok(_) if !s.at_end() => Err(BodyError::Invalid),
        Ok(top) => Ok(top),
    }
}

/// Whether the route's destination is off unless the event names it (Salesforce, see
/// [`RoutePolicy::off_unless_named`]) for this event: Segment's libraries and receivers hold it
/// so; rudder-server, reading an event in RudderStack's shape, has no such default.
fn off_unless_named(req: &Request, rudder: Consent) -> bool {
    req.policy.off_unless_named()
        && match req.config.consent_format {
            ConsentFormat::Segment => true,
            ConsentFormat::Rudderstack => false,
            ConsentFormat::Auto => rudder == Consent::Absent,
        }
}

/// One event; `track_endpoint`: the path names no call, or names `track`.
fn single(req: &Request, facts: EventFacts, track_endpoint: bool) -> Judgement {
    let signals = Signals {
        readable: facts.readable,
        is_track: track_endpoint && facts.call == Some(Call::Track),
        allow_listed_name: facts.allow_listed_name,
        segment: facts.consent,
        rudder: facts.rudder,
        integrations_off: facts
            .integrations
            .turns_off(off_unless_named(req, facts.rudder)),
        gpc: req.gpc,
    };
    let verdict = decide(req.config, req.policy, &signals);
    let mut j = Judgement::forward(false, 1);
    if let Verdict::Deny { reason, missing } = verdict {
        j.action = Action::Reply(reason);
        count_drop(&mut j, reason, missing);
    }
    j
}

fn judge_batch(
    req: &Request,
    encoding: Encoding,
    plain: &[u8],
    top: &EventFacts,
    items: &[Item],
    array: (usize, usize),
) -> Judgement {
    let mut j = Judgement::forward(true, u32::try_from(items.len()).unwrap_or(u32::MAX));
    let mut keep = Vec::with_capacity(items.len());
    for item in items {
        let verdict = match &item.facts {
            None => Verdict::Deny {
                reason: Reason::InvalidEvent,
                missing: 0,
            },
            Some(facts) => batch_item_verdict(req, facts, top),
        };
        match verdict {
            Verdict::Allow => keep.push(item),
            Verdict::Deny { reason, missing } => count_drop(&mut j, reason, missing),
        }
    }
    if j.dropped == 0 {
        return j;
    }
    if keep.is_empty() || req.config.batch_mode == BatchMode::Reject {
        j.action = Action::Reply(batch_reply_reason(&j.dropped_by_reason));
        return j;
    }
    let rewritten = batch::rewrite(plain, array, &keep);
    j.action = Action::Rewrite(encoding.encode(rewritten));
    j
}

/// A batch item, with the batch's top-level `context` and `integrations` merged in key by key,
/// the item's own keys winning (Segment's rule; Jitsu merges `consentManagement` so too). Some
/// receivers read an item otherwise, and it is kept only if every reading lets it go:
/// RudderStack's gateway stores each item alone and drops the batch's context (the item's
/// `consentManagement` is only its own), a reader that takes the item's `integrations`
/// object whole, when it has one, ignores the batch's, and one that merges the batch's context
/// all the way down (lodash's `merge` or `defaultsDeep`) reads the batch's preferences in an item
/// whose consent states none (`consent: {}`), and, in an item's `consentManagement`, the batch's
/// denied IDs beyond the item's own list's length (lists merge element by element) and the
/// batch's `provider` or `resolutionStrategy` where the item has none.
fn batch_item_verdict(req: &Request, facts: &EventFacts, top: &EventFacts) -> Verdict {
    let either = |first: Consent, then: Consent| match first {
        Consent::Absent => then,
        given => given,
    };
    let denied = |c: Consent| match c {
        Consent::Denied {
            denied, allowed, ..
        } => Some((denied, allowed)),
        _ => None,
    };
    let managed = |c: Consent| matches!(c, Consent::NoPreferences | Consent::Denied { .. });
    let deep = |first: Consent, then: Consent| match (first, then) {
        (Consent::NoPreferences, given @ Consent::Preferences { .. }) => given,
        // Two `consentManagement` objects, one with a list: the merged list holds the item's IDs
        // and some of the batch's, and the merged `provider` and `resolutionStrategy` may be
        // either's (`"custom"` from the batch, `"or"` from the item): read as every ID of both
        // denied, any one of them enough. The merged allowed list is surely none but IDs both
        // list (an item's array keeps the batch's IDs past its own length; an item's object
        // merged onto the batch's array leaves the array, JSON dropping the object's keys), the
        // item's where the batch lists none, and nothing the batch's alone allow.
        (first, then) if managed(first) && managed(then) => match (denied(first), denied(then)) {
            (None, None) => first,
            (mine, theirs) => Consent::Denied {
                denied: mine.map_or(0, |m| m.0) | theirs.map_or(0, |t| t.0),
                allowed: match (mine.and_then(|m| m.1), theirs.and_then(|t| t.1)) {
                    (Some(mine), Some(theirs)) => Some(mine & theirs),
                    (Some(mine), None) => Some(mine),
                    (None, Some(_)) => Some(0),
                    (None, None) => None,
                },
                strategy: Strategy::And,
            },
        },
        _ => either(first, then),
    };
    let (mine, batch) = (facts.integrations, top.integrations);
    let whole = if mine.present { mine } else { batch };
    let off_by_default = off_unless_named(req, facts.rudder);
    // Merged all the way down, the batch's other spellings of a required category sit beside
    // the item's own keys in one object, which readers read first or last (see
    // `read_preferences`): such an item cannot be judged.
    let respelled_beside = matches!(
        (facts.consent, top.consent),
        (Consent::Preferences { .. }, Consent::Preferences { respelled, .. }) if respelled != 0
    );
    let signals = |segment: Consent, rudder: Consent| Signals {
        readable: facts.readable && !respelled_beside,
        is_track: facts.call == Some(Call::Track),
        allow_listed_name: facts.allow_listed_name,
        segment,
        rudder,
        integrations_off: mine.merged(batch).turns_off(off_by_default)
            || whole.turns_off(off_by_default),
        gpc: req.gpc,
    };
    // Without consent at the batch's top level (what SDKs send), every reading is the item's own.
    if top.consent == Consent::Absent && top.rudder == Consent::Absent {
        return decide(
            req.config,
            req.policy,
            &signals(facts.consent, facts.rudder),
        );
    }
    // The readings, in order: the item alone (RudderStack's gateway), merged key by key, merged
    // all the way down. The first that refuses decides; a reading like an earlier one is skipped.
    let shallow = either(facts.consent, top.consent);
    let readings = [
        (shallow, facts.rudder),
        (shallow, either(facts.rudder, top.rudder)),
        (
            deep(facts.consent, top.consent),
            deep(facts.rudder, top.rudder),
        ),
    ];
    let mut verdict = Verdict::Allow;
    for (i, &(segment, rudder)) in readings.iter().enumerate() {
        if readings
            .get(..i)
            .is_some_and(|before| before.contains(&(segment, rudder)))
        {
            continue;
        }
        verdict = decide(req.config, req.policy, &signals(segment, rudder));
        if verdict != Verdict::Allow {
            break;
        }
    }
    verdict
}

/// A refused batch is a consent denial (its body says how many items were dropped and why),
/// unless no dropped item was about consent: no item could be read (an invalid request), or the
/// integrations object turned off every item that could be read (the reply then says so, not
/// that the user withheld consent).
fn batch_reply_reason(counts: &[u32; Reason::ALL.len()]) -> Reason {
    let count = |reason: Reason| counts.get(reason.index()).copied().unwrap_or(0);
    let dropped: u32 = counts.iter().sum();
    let consent = count(Reason::FilteredByEndUserConsent) + count(Reason::MissingConsent);
    if dropped > 0 && count(Reason::InvalidEvent) == dropped {
        Reason::InvalidEvent
    } else if consent == 0 && count(Reason::FilteredByIntegrations) > 0 {
        Reason::FilteredByIntegrations
    } else {
        Reason::FilteredByEndUserConsent
    }
}

/// The most frequent reason; a tie goes to the one listed first in [`Reason::ALL`].
fn most_common(counts: &[u32; Reason::ALL.len()]) -> Option<Reason> {
    Reason::ALL
        .iter()
        .zip(counts)
        .rev()
        .filter(|(_, &n)| n > 0)
        .max_by_key(|(_, &n)| n)
        .map(|(r, _)| *r)
}

fn count_drop(j: &mut Judgement, reason: Reason, missing: u64) {
    j.dropped += 1;
    if let Some(n) = j.dropped_by_reason.get_mut(reason.index()) {
        *n += 1;
    }
    j.denied_categories |= missing;
    // Bit by bit over the set ones only: a denied batch item would otherwise cost 64 steps.
    let mut bits = missing;
    while bits != 0 {
        if let Some(n) = j.category_denials.get_mut(bits.trailing_zeros() as usize) {
            *n += 1;
        }
        bits &= bits - 1;
    }
}

/// What decides one event (a batch item with the batch's context and integrations merged in).
#[derive(Debug, Clone, Copy)]
pub struct Signals {
    /// False when something the decision reads could be read two ways.
    pub readable: bool,
    /// A `track` call by its `type` and, where the path names a call, by its path too.
    pub is_track: bool,
    /// Its `event` name is in `always_allow_events`.
    pub allow_listed_name: bool,
    /// Segment's consent shape.
    pub segment: Consent,
    /// RudderStack's consent shape.
    pub rudder: Consent,
    /// `integrations` turns the route's destination off.
    pub integrations_off: bool,
    /// The request carries `Sec-GPC: 1`.
    pub gpc: bool,
}

/// The decision for one event. Consent is checked first (an `integrations` entry never stands
/// in for it), then the route's destination in `integrations`.
pub fn decide(config: &Config, policy: &RoutePolicy, e: &Signals) -> Verdict {
    if !e.readable {
        return Verdict::Deny {
            reason: Reason::InvalidEvent,
            missing: 0,
        };
    }
    // The shape the format reads, and whether the event carries the other one (which a single
    // format notes but does not read).
    let (consent, other_shape) = match (config.consent_format, e.segment, e.rudder) {
        (ConsentFormat::Segment, c, o) | (ConsentFormat::Rudderstack, o, c) => {
            (c, o != Consent::Absent)
        }
        (ConsentFormat::Auto, c, Consent::Absent) | (ConsentFormat::Auto, Consent::Absent, c) => {
            (c, false)
        }
        // Both shapes: a Segment reader and a RudderStack reader could decide differently.
        (ConsentFormat::Auto, _, _) => {
            return Verdict::Deny {
                reason: Reason::InvalidEvent,
                missing: 0,
            }
        }
    };
    // Events that pass regardless of consent (Segment's consent change itself) still honour
    // `integrations`. RudderStack has no such events: rudder-server drops a `Consent Change`
    // that denies a destination's IDs like any other, so the list is for Segment's shape only.
    let rudder_shape = match config.consent_format {
        ConsentFormat::Segment => false,
        ConsentFormat::Rudderstack => true,
        ConsentFormat::Auto => e.rudder != Consent::Absent,
    };
    if !(e.is_track && e.allow_listed_name && !rudder_shape) {
        if let Some(denial) = consent_denial(config, policy, consent, other_shape, e.gpc) {
            return denial;
        }
    }
    // A single format, and the event also carries the other shape's own decision: a reader of
    // that shape (rudder-server takes Segment's endpoints and reads only its own) must let the
    // event go too, or the two read it differently. Allow-listed events included: rudder-server
    // exempts none.
    let other = match config.consent_format {
        ConsentFormat::Segment => e.rudder,
        ConsentFormat::Rudderstack => e.segment,
        ConsentFormat::Auto => Consent::Absent,
    };
    if matches!(other, Consent::Preferences { .. } | Consent::Denied { .. })
        && consent_denial(config, policy, other, false, e.gpc).is_some()
    {
        return Verdict::Deny {
            reason: Reason::InvalidEvent,
            missing: 0,
        };
    }
    if e.integrations_off {
        return Verdict::Deny {
            reason: Reason::FilteredByIntegrations,
            missing: 0,
        };
    }
    Verdict::Allow
}

/// The consent check: `None` when the event may go.
fn consent_denial(
    config: &Config,
    policy: &RoutePolicy,
    consent: Consent,
    other_shape: bool,
    gpc: bool,
) -> Option<Verdict> {
    let all = all_bits(policy.categories.len());
    let (consented, match_mode) = match consent {
        // `allow` lets through events that carry no consent, not events whose consent is in
        // the shape the format does not read.
        Consent::Absent | Consent::NoPreferences => match config.on_missing_consent {
            MissingConsent::Allow if !other_shape => (all, policy.match_mode),
            MissingConsent::Allow | MissingConsent::Deny => {
                return Some(Verdict::Deny {
                    reason: Reason::MissingConsent,
                    missing: all,
                })
            }
        },
        Consent::Preferences { consented, .. } => (consented & all, policy.match_mode),
        // Both of rudder-server's readings: the denied IDs, and the allowed ones where listed.
        Consent::Denied {
            denied,
            allowed,
            strategy,
        } => (
            all & !denied & allowed.unwrap_or(all),
            match strategy {
                Strategy::Or => Match::Any,
                Strategy::And => Match::All,
                Strategy::Route => policy.match_mode,
            },
        ),
    };
    // Global Privacy Control withdraws the route's `gpc_denies` whatever the event says.
    let consented = if gpc {
        consented & !policy.gpc_denies
    } else {
        consented
    };
    let allowed = match match_mode {
        Match::All => consented == all,
        Match::Any => consented != 0,
    };
    (!allowed).then_some(Verdict::Deny {
        reason: Reason::FilteredByEndUserConsent,
        missing: all & !consented,
    })
}

fn all_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}
