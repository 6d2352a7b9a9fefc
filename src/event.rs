//! Reading what the decision needs from one Segment event, in a single validating pass: its type,
//! its event name, and its consent for the route's required categories. Nothing else is kept.
//!
//! Anything that could be read two ways makes the event unreadable instead of being resolved by
//! "first key wins" or "last key wins": a destination may parse the other way.

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

/// What one event object says, as far as the decision cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFacts {
    pub consent: Consent,
    /// False when the consent or the fields that decide cannot be read unambiguously.
    pub readable: bool,
    /// `type` is present: whether it is "track".
    pub is_track: Option<bool>,
    /// The track `event` name is in the always-allow list.
    pub allow_listed_name: bool,
    /// The value of a top-level `batch` key is an array (its span: `[` and `]` offsets).
    pub batch: Option<(usize, usize)>,
}

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

/// Reads one event object at the cursor. Syntax errors are `Err`; readable-but-ambiguous content
/// is reported through `readable: false` so that a batch can drop just that item and go on.
/// `batch_items`, when given, visits the elements of a top-level `batch` array.
pub fn read_event<'a>(
    s: &mut Scanner<'a>,
    wanted: &Wanted,
    mut batch_items: Option<ItemVisitor<'_, 'a>>,
) -> Result<EventFacts, Invalid> {
    let mut facts = EventFacts {
        consent: Consent::Absent,
        readable: true,
        is_track: None,
        allow_listed_name: false,
        batch: None,
    };
    let mut seen_context = false;
    let mut seen_event = false;
    let mut seen_batch = false;
    let mut event_name: Option<Str<'a>> = None;
    if s.object_start()? {
        loop {
            let key = s.key()?;
            if key.eq_str("context") {
                facts.readable &= !seen_context;
                seen_context = true;
                match read_context(s, wanted.categories)? {
                    Some(consent) => facts.consent = consent,
                    None => facts.readable = false,
                }
            } else if key.eq_str("type") {
                facts.readable &= facts.is_track.is_none();
                facts.is_track = Some(match s.peek_token() {
                    Some(b'"') => s.string()?.eq_str("track"),
                    _ => {
                        s.skip_value()?;
                        false
                    }
                });
            } else if key.eq_str("event") {
                facts.readable &= !seen_event;
                seen_event = true;
                event_name = match s.peek_token() {
                    Some(b'"') => Some(s.string()?),
                    _ => {
                        s.skip_value()?;
                        None
                    }
                };
            } else if key.eq_str("batch") && batch_items.is_some() {
                facts.readable &= !seen_batch;
                seen_batch = true;
                facts.batch = match (s.peek_token(), batch_items.as_mut()) {
                    (Some(b'['), Some(visit)) => Some(read_items(s, &mut **visit)?),
                    _ => {
                        // `batch` that is not a list: not a batch we could judge.
                        s.skip_value()?;
                        facts.readable = false;
                        None
                    }
                };
            } else {
                s.skip_value()?;
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

/// `Ok(None)`: `context` (or its `consent` / `categoryPreferences`) is there but unreadable.
fn read_context(s: &mut Scanner, categories: &[String]) -> Result<Option<Consent>, Invalid> {
    if s.peek_token() != Some(b'{') {
        s.skip_value()?;
        return Ok(None);
    }
    let mut consent = Some(Consent::Absent);
    let mut seen = false;
    if s.object_start()? {
        loop {
            let key = s.key()?;
            if key.eq_str("consent") {
                let read = read_consent(s, categories)?;
                consent = if seen { None } else { read };
                seen = true;
            } else {
                s.skip_value()?;
            }
            if !s.object_more()? {
                break;
            }
        }
    }
    Ok(consent)
}

fn read_consent(s: &mut Scanner, categories: &[String]) -> Result<Option<Consent>, Invalid> {
    if s.peek_token() != Some(b'{') {
        s.skip_value()?;
        return Ok(None);
    }
    let mut consent = Some(Consent::NoPreferences);
    let mut seen = false;
    if s.object_start()? {
        loop {
            let key = s.key()?;
            if key.eq_str("categoryPreferences") {
                let read = read_preferences(s, categories)?;
                consent = if seen {
                    None
                } else {
                    read.map(|consented| Consent::Preferences { consented })
                };
                seen = true;
            } else {
                s.skip_value()?;
            }
            if !s.object_more()? {
                break;
            }
        }
    }
    Ok(consent)
}

/// The consented bits; `Ok(None)` for a non-object or a required category given twice.
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
            match key.position_in(categories) {
                Some(i) if i < 64 => {
                    let bit = 1u64 << i;
                    ambiguous |= seen & bit != 0;
                    seen |= bit;
                    if s.value_is_true()? {
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
        ] {
            assert_eq!(consent(body), None, "{body}");
        }
        // A key no route needs may repeat: nobody reads it.
        assert!(
            consent(r#"{"context":{"consent":{"categoryPreferences":{"C":true,"C":false}}}}"#)
                .is_some()
        );
    }

    #[test]
    fn recognises_allow_listed_track_events() {
        let f = facts(r#"{"type":"track","event":"Consent Change"}"#, &["A"]).unwrap();
        assert_eq!((f.is_track, f.allow_listed_name), (Some(true), true));
        let f = facts(r#"{"type":"identify","event":"Consent Change"}"#, &["A"]).unwrap();
        assert_eq!((f.is_track, f.allow_listed_name), (Some(false), true));
        let f = facts(r#"{"event":"Consent Chang\u0065"}"#, &["A"]).unwrap();
        assert_eq!((f.is_track, f.allow_listed_name), (None, true));
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
