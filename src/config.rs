//! The plugin configuration: parsed once at configure time, every key validated, and every error
//! naming the key it is about, so Envoy's refusal to start says what to fix.

use serde::Deserialize;

use crate::settings;
use std::sync::Arc;

use crate::event::ConsentFormat;
use crate::policy::{validate_categories, Match, RoutePolicy};
use crate::target::{
    is_host, is_plain_authority, normalize_path, router_readings, split_authority,
};

/// What to do with an event that carries no `context.consent.categoryPreferences`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingConsent {
    Deny,
    Allow,
}

/// What to do with a request on a route that has no consent policy (no route metadata, no rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnconfiguredRoute {
    /// Forward it ungated (counted and recorded as `ungated`).
    Allow,
    /// Refuse it: every route must carry a policy or say `exempt: true`.
    Deny,
}

/// What to do with a batch in which some items are denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchMode {
    /// Forward the allowed items in a rewritten body.
    Filter,
    /// Reject the whole batch.
    Reject,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub metadata_namespace: String,
    pub on_missing_consent: MissingConsent,
    pub consent_format: ConsentFormat,
    pub match_mode: Match,
    pub deny_status: u16,
    pub max_body_bytes: usize,
    pub max_batch_items: usize,
    pub always_allow_events: Vec<String>,
    pub routes: Vec<RouteRule>,
    pub batch_mode: BatchMode,
    pub dry_run: bool,
    /// Whether route metadata is read at all (false: `routes` rules only, which is cheaper).
    pub route_metadata: bool,
    /// Whether each request leaves its decision record (filter state, dynamic metadata): one
    /// host call per request, saved where no access log reads it.
    pub decision_record: bool,
    /// The dynamic module only: whether the decision record's fields also go to dynamic metadata
    /// (`%DYNAMIC_METADATA(consent_gate:decision)%`, ...), besides the filter-state record. That
    /// host call is the dearest one the module makes (about 2 µs per request); false saves it
    /// where the access log reads only `%FILTER_STATE(wasm.consent_gate:PLAIN)%`. The proxy-wasm
    /// module never sets dynamic metadata.
    pub decision_metadata: bool,
    pub on_unconfigured_route: UnconfiguredRoute,
}

/// The largest `max_body_bytes`: with it, the worst request (a compressed body that inflates to
/// the limit, its batch rewritten and compressed again) stays within a worker's memory.
pub const MAX_BODY_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// The largest `max_batch_items`.
pub const MAX_BATCH_ITEMS_LIMIT: usize = 100_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            metadata_namespace: "consent_gate".into(),
            on_missing_consent: MissingConsent::Deny,
            consent_format: ConsentFormat::Segment,
            match_mode: Match::All,
            deny_status: 403,
            max_body_bytes: 1_048_576,
            // Segment's HTTP API takes at most 2,500 events per batch request.
            max_batch_items: 2_500,
            always_allow_events: vec![
                "Segment Consent Preference Updated".into(),
                "Consent Change".into(),
            ],
            routes: Vec::new(),
            batch_mode: BatchMode::Filter,
            dry_run: false,
            route_metadata: true,
            decision_record: true,
            decision_metadata: true,
            on_unconfigured_route: UnconfiguredRoute::Allow,
        }
    }
}

/// A `routes` rule: gates requests that match every condition it gives.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRule {
    pub route_name: Option<String>,
    /// Lower-case, without trailing dots; `port` only when the rule names one.
    /// The host (lower-case, no trailing dot) and, if the rule names one, the port.
    pub host: Option<(String, Option<u16>)>,
    /// A normalised path (see [`crate::target::normalize_path`]).
    pub path_prefix: Option<String>,
    pub policy: Arc<RoutePolicy>,
}

/// What a rule is matched against: the request as Envoy hands it to the filter.
pub struct RequestTarget<'a> {
    pub route_name: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
}

/// The rule that gates a request, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMatch<'c> {
    None,
    Rule(&'c Arc<RoutePolicy>),
    /// Different readings of the path fall under different rules.
    Conflicting,
}

impl RouteRule {
    /// Whether this rule matches every request `later` matches.
    fn covers(&self, later: &RouteRule) -> bool {
        let names = match (&self.route_name, &later.route_name) {
            (None, _) => true,
            (Some(mine), Some(theirs)) => mine == theirs,
            (Some(_), None) => false,
        };
        // A request without a port matches any rule's port, one with a port only the rule's.
        let hosts = match (&self.host, &later.host) {
            (None, _) => true,
            (Some((mine, my_port)), Some((theirs, their_port))) => {
                mine == theirs && (my_port.is_none() || my_port == their_port)
            }
            (Some(_), None) => false,
        };
        let paths = match (&self.path_prefix, &later.path_prefix) {
            (None, _) => true,
            // Every request path starts with `/` (`OPTIONS *` aside, which no rule can judge).
            (Some(mine), None) => mine == "/",
            (Some(mine), Some(theirs)) => {
                // Every path under `theirs` is under mine (it starts with mine: matching mine
                // only as mine's bare form, it would be shorter), and so is its bare form.
                let under = |path: &str| self.matches_path(path);
                under(theirs)
                    && theirs.len() >= mine.len()
                    && theirs
                        .strip_suffix('/')
                        .is_none_or(|bare| bare.is_empty() || under(bare))
            }
        };
        names && hosts && paths
    }

    fn matches_path(&self, path: &str) -> bool {
        self.path_prefix.as_deref().is_none_or(|p| {
            let starts = |p: &str| {
                path.as_bytes()
                    .get(..p.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(p.as_bytes()))
            };
            // `/v1/track/` also gates `/v1/track` itself: a receiver reads both alike.
            starts(p)
                || p.strip_suffix('/').is_some_and(|bare| {
                    !bare.is_empty() && path.len() == bare.len() && starts(bare)
                })
        })
    }

    fn matches(&self, route_name: &str, host: &(String, Option<&str>), path: &str) -> bool {
        self.route_name.as_deref().is_none_or(|n| n == route_name)
            && self.host.as_ref().is_none_or(|(name, port)| {
                // A request that names no port (its scheme's default, unknown here) or one that
                // is not a port number matches a rule's port: the rule gates more, never less.
                *name == host.0
                    && port.is_none_or(|p| {
                        host.1
                            .and_then(|given| given.parse::<u16>().ok())
                            .is_none_or(|given| given == p)
                    })
            })
            && self.matches_path(path)
    }
}

impl Config {
    /// The rule that gates `target`: the first that matches. The path is tried in every form a
    /// destination may read or route it (see [`router_readings`]), and the host without case,
    /// port or trailing dot, so that no spelling of a gated path passes ungated. Readings that
    /// fall under different rules make the request ambiguous.
    pub fn rule_for(&self, target: &RequestTarget) -> RuleMatch<'_> {
        if self.routes.is_empty() {
            return RuleMatch::None;
        }
        // An authority that readers split differently may name a gated host to some of them:
        // where a rule names a host, it is ambiguous, not unmatched.
        if self.routes.iter().any(|r| r.host.is_some()) && !is_plain_authority(target.authority) {
            return RuleMatch::Conflicting;
        }
        let host = split_authority(target.authority);
        let needs_path = self.routes.iter().any(|r| r.path_prefix.is_some());
        let readings = if needs_path {
            router_readings(target.path)
        } else {
            vec![String::new()]
        };
        let mut found: Option<usize> = None;
        for path in &readings {
            let Some(i) = self
                .routes
                .iter()
                .position(|r| r.matches(target.route_name, &host, path))
            else {
                continue;
            };
            match found {
                Some(f) if f != i => return RuleMatch::Conflicting,
                _ => found = Some(i),
            }
        }
        match found.and_then(|i| self.routes.get(i)) {
            Some(rule) => RuleMatch::Rule(&rule.policy),
            None => RuleMatch::None,
        }
    }

    /// Why this configuration may let requests through ungated without meaning to, if it can.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.dry_run {
            out.push("dry_run is on: nothing is refused; requests and batch items the filter would refuse are forwarded, recorded as would_deny or would_filter".to_string());
        }
        if !self.route_metadata && self.routes.is_empty() {
            out.push(match self.on_unconfigured_route {
                UnconfiguredRoute::Allow => "the configuration gates nothing by itself: \"route_metadata\" is false and there are no \"routes\" rules, so every request passes ungated but on routes with a per-route configuration (dynamic module only)".to_string(),
                UnconfiguredRoute::Deny => "the configuration gates nothing by itself: \"route_metadata\" is false and there are no \"routes\" rules, so every request is refused (on_unconfigured_route: deny) but on routes with a per-route configuration (dynamic module only)".to_string(),
            });
        }
        out
    }

    /// Parses the plugin configuration text. An empty text means all defaults.
    pub fn parse(text: &str) -> Result<Config, String> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let raw: RawConfig = settings::from_str(text).map_err(|e| {
            if let Some(got) = e.strip_prefix("must be an object, got ") {
                format!("the plugin configuration must be a JSON object, got {got}")
            } else if e.starts_with("is not valid JSON") {
                // A `google.protobuf.Struct` reaches the wasm module as protobuf bytes.
                format!("the plugin configuration {e}: pass it as a google.protobuf.StringValue holding a JSON object")
            } else {
                e
            }
        })?;
        let mut config = Config::default();
        if let Some(ns) = raw.metadata_namespace {
            config.metadata_namespace = non_empty("metadata_namespace", ns)?;
            if let Some(c) = config
                .metadata_namespace
                .chars()
                .find(|c| !c.is_ascii_graphic())
            {
                return Err(format!(
                    "\"metadata_namespace\" must be printable ASCII, got \"{}\" (with '{}'): white space or a control character would match no route's metadata, and a character beyond ASCII may be the look-alike of a letter",
                    settings::shown(&config.metadata_namespace),
                    settings::shown(c.encode_utf8(&mut [0; 4]))
                ));
            }
        }
        config.on_missing_consent = raw.on_missing_consent.unwrap_or(config.on_missing_consent);
        config.consent_format = raw.consent_format.unwrap_or(config.consent_format);
        config.match_mode = raw.match_mode.unwrap_or(config.match_mode);
        if let Some(status) = raw.deny_status {
            config.deny_status = u16::try_from(in_range("deny_status", status, 400, 599)?)
                .map_err(|_| "\"deny_status\" is out of range".to_string())?;
        }
        if let Some(n) = raw.max_body_bytes {
            config.max_body_bytes =
                in_range("max_body_bytes", n, 1, MAX_BODY_BYTES_LIMIT as u64)? as usize;
        }
        if let Some(n) = raw.max_batch_items {
            config.max_batch_items =
                in_range("max_batch_items", n, 1, MAX_BATCH_ITEMS_LIMIT as u64)? as usize;
        }
        if let Some(events) = raw.always_allow_events {
            config.always_allow_events = unique_names("always_allow_events", events, true)?;
        }
        config.batch_mode = raw.batch_mode.unwrap_or(config.batch_mode);
        config.dry_run = raw.dry_run.unwrap_or(config.dry_run);
        config.route_metadata = raw.route_metadata.unwrap_or(config.route_metadata);
        config.decision_record = raw.decision_record.unwrap_or(config.decision_record);
        config.decision_metadata = raw.decision_metadata.unwrap_or(config.decision_metadata);
        config.on_unconfigured_route = raw
            .on_unconfigured_route
            .unwrap_or(config.on_unconfigured_route);
        config.routes = raw
            .routes
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, rule)| route_rule(&format!("routes[{i}]"), rule, config.match_mode))
            .collect::<Result<_, _>>()?;
        // The first matching rule gates a request: a rule that an earlier one covers never
        // applies, and its categories (meant for the requests it names) are never asked for.
        for (j, later) in config.routes.iter().enumerate() {
            if let Some(i) = config
                .routes
                .get(..j)
                .and_then(|before| before.iter().position(|earlier| earlier.covers(later)))
            {
                return Err(format!(
                    "\"routes[{j}]\" can never apply: \"routes[{i}]\", before it, matches every request it matches (the first matching rule gates a request; put the narrower rule first)"
                ));
            }
        }
        Ok(config)
    }
}

/// The plugin configuration as written: every key optional, no other key allowed, none twice.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    metadata_namespace: Option<String>,
    on_missing_consent: Option<MissingConsent>,
    consent_format: Option<ConsentFormat>,
    #[serde(rename = "match")]
    match_mode: Option<Match>,
    deny_status: Option<u64>,
    max_body_bytes: Option<u64>,
    max_batch_items: Option<u64>,
    always_allow_events: Option<Vec<String>>,
    routes: Option<Vec<RawRule>>,
    batch_mode: Option<BatchMode>,
    dry_run: Option<bool>,
    route_metadata: Option<bool>,
    decision_record: Option<bool>,
    decision_metadata: Option<bool>,
    on_unconfigured_route: Option<UnconfiguredRoute>,
}

/// A `routes` rule as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    route_name: Option<String>,
    host: Option<String>,
    path_prefix: Option<String>,
    categories: Option<Vec<String>>,
    #[serde(rename = "match")]
    match_mode: Option<Match>,
    destination: Option<String>,
    gpc_denies: Option<Vec<String>>,
}

fn non_empty(key: &str, value: String) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("\"{key}\" must not be empty"));
    }
    Ok(value)
}

/// A name compared exactly with one Envoy gives (a route's name): white space or a control
/// character at either end is a copying mistake that would match nothing.
fn trimmed_name(key: &str, value: String) -> Result<String, String> {
    let value = non_empty(key, value)?;
    let trimmed = value.trim_matches(|c: char| c.is_whitespace() || c.is_control());
    if trimmed != value {
        return Err(format!(
            "\"{key}\" has white space or a control character at an end (\"{}\"): it is compared exactly with the route's name, did you mean \"{}\"?",
            settings::shown(&value),
            settings::shown(trimmed)
        ));
    }
    Ok(value)
}

/// A rule's route name: compared exactly, so a glob's wildcard would match no route.
fn route_name(key: &str, value: String) -> Result<String, String> {
    let value = trimmed_name(key, value)?;
    match value.bytes().any(|b| matches!(b, b'*' | b'?')) {
        true => Err(format!(
            "\"{key}\" is compared exactly with the route's name, not a pattern: '*' and '?' would match no route, and leave it ungated (got \"{}\")",
            settings::shown(&value)
        )),
        false => Ok(value),
    }
}

/// The first thing in a rule's path prefix that makes it a pattern, a list or a template, not a
/// path: `%` without two hex digits (SQL's `LIKE`, printf's `%s`), `,` and `;` (lists), `+`
/// and `!` (patterns' repeat and negation), `'`, `:` starting a segment (`/v1/:type`: a route
/// parameter), and a segment of dots alone longer than `..` (`/v1/...`).
fn not_a_path(prefix: &str) -> Option<String> {
    let bytes = prefix.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let bad = match b {
            b'%' => !bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
            b',' | b';' | b'+' | b'!' | b'\'' => true,
            b':' => i > 0 && bytes.get(i - 1) == Some(&b'/'),
            _ => false,
        };
        if bad {
            return Some((b as char).to_string());
        }
    }
    prefix
        .split('/')
        .find(|segment| segment.len() > 2 && segment.bytes().all(|b| b == b'.'))
        .map(str::to_string)
}

fn in_range(key: &str, n: u64, min: u64, max: u64) -> Result<u64, String> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "\"{key}\" must be an integer from {min} to {max}, got {n}"
        ))
    }
}

/// Names that must be non-empty and unique (category names, event names).
fn unique_names(
    key: &str,
    names: Vec<String>,
    allow_empty_list: bool,
) -> Result<Vec<String>, String> {
    if names.is_empty() && !allow_empty_list {
        return Err(format!("\"{key}\" must not be empty"));
    }
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err(format!("\"{key}[{i}]\" must not be empty"));
        }
        if names.get(..i).is_some_and(|before| before.contains(name)) {
            return Err(format!("\"{key}[{i}]\" repeats \"{name}\""));
        }
    }
    Ok(names)
}

fn route_rule(at: &str, raw: RawRule, default_match: Match) -> Result<RouteRule, String> {
    let Some(categories) = raw.categories else {
        return Err(format!("\"{at}.categories\" is required"));
    };
    let categories = unique_names(&format!("{at}.categories"), categories, false)?;
    validate_categories(&categories).map_err(|e| format!("\"{at}.categories\" {e}"))?;
    let mut rule = RouteRule {
        route_name: raw
            .route_name
            .map(|n| route_name(&format!("{at}.route_name"), n))
            .transpose()?,
        host: None,
        path_prefix: None,
        policy: Arc::new(
            RoutePolicy::new(categories, raw.match_mode.unwrap_or(default_match)).with_extras(
                &format!("{at}."),
                raw.destination,
                raw.gpc_denies,
            )?,
        ),
    };
    if let Some(text) = raw.host {
        let path = format!("{at}.host");
        let text = non_empty(&path, text)?;
        let (name, port) = split_authority(&text);
        // A DNS name or an IP address, as a request's host can be: anything else (a pattern,
        // a list, a scheme, white space) would match no request, and leave the route ungated.
        // A leading dot or an empty label is a suffix pattern or a typo (`.example.com`).
        let host_like = is_host(&name)
            && !name.starts_with('.')
            && !name.as_bytes().windows(2).any(|w| w == b"..");
        let port = match port {
            None => Some(None),
            Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).map(Some),
        };
        // An empty port (`host:`) reads as none, but was meant to be one: refused, not widened.
        match (host_like && !text.contains('@') && !text.ends_with(':'), port) {
            (true, Some(port)) => rule.host = Some((name, port)),
            _ => {
                return Err(format!(
                    "\"{path}\" must be a host name or IP address, optionally with a port (1-65535), got \"{text}\""
                ))
            }
        }
    }
    if let Some(prefix) = raw.path_prefix {
        let path = format!("{at}.path_prefix");
        let prefix = non_empty(&path, prefix)?;
        // A literal prefix: a wildcard or a pattern (`/v1/*`, `/v1/.*`, `/v1/(track|page)`)
        // or a byte no path holds as sent would match no request, and leave the route ungated.
        if let Some(c) = prefix.chars().find(|&c| {
            !c.is_ascii_graphic()
                || matches!(
                    c,
                    '*' | '['
                        | ']'
                        | '('
                        | ')'
                        | '{'
                        | '}'
                        | '^'
                        | '$'
                        | '|'
                        | '\\'
                        | '"'
                        | '<'
                        | '>'
                        | '`'
                )
        }) {
            return Err(format!(
                "\"{path}\" is a literal path prefix, not a pattern: '{}' is a wildcard, a pattern's character or one no request path holds (got \"{}\")",
                settings::shown(c.encode_utf8(&mut [0; 4])),
                settings::shown(&prefix)
            ));
        }
        if let Some(what) = not_a_path(&prefix) {
            return Err(format!(
                "\"{path}\" is a literal path prefix, not a pattern, a list or a template: \"{}\" would match no request path as meant, and leave the route ungated (got \"{}\")",
                settings::shown(&what),
                settings::shown(&prefix)
            ));
        }
        if !prefix.starts_with('/')
            || prefix.contains(['?', '#'])
            || normalize_path(&prefix) != prefix
        {
            // The suggestion is a prefix this check takes: no query or fragment, a leading `/`.
            let path_part = prefix.split(['?', '#']).next().unwrap_or_default();
            let normal = normalize_path(&format!("/{}", path_part.trim_start_matches('/')));
            return Err(format!(
                "\"{path}\" must be a normalised path starting with \"/\" (no query, no \"//\", \"/./\", \"/../\" or escaped unreserved characters): got \"{prefix}\", did you mean \"{normal}\"?"
            ));
        }
        rule.path_prefix = Some(prefix);
    }
    if rule.route_name.is_none() && rule.host.is_none() && rule.path_prefix.is_none() {
        return Err(format!(
            "\"{at}\" needs at least one of route_name, host, path_prefix"
        ));
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_prefix_to_normalise_is_refused_with_a_suggestion_that_is_taken() {
        let rule = |prefix: &str| {
            Config::parse(&format!(
                r#"{{"routes":[{{"path_prefix":{prefix:?},"categories":["A"]}}]}}"#
            ))
        };
        for (bad, want) in [
            ("/v1?x", "/v1"),
            ("/v1/track#f", "/v1/track"),
            ("//v1//x?y=1", "/v1/x"),
            ("v1/track", "/v1/track"),
            ("/v1/../x", "/x"),
            ("/v1/%61", "/v1/a"),
            ("?x", "/"),
        ] {
            let err = rule(bad).unwrap_err();
            assert!(
                err.contains(&format!("did you mean {want:?}?")),
                "{bad} -> {err}"
            );
            assert!(
                rule(want).is_ok(),
                "{bad}: the suggestion {want} is refused too"
            );
        }
    }

    #[test]
    fn a_rule_an_earlier_rule_covers_is_refused() {
        let rules = |list: &str| Config::parse(&format!(r#"{{"routes":[{list}]}}"#));
        for (list, covered_by) in [
            (
                r#"{"path_prefix":"/","categories":["A"]},{"path_prefix":"/ads","categories":["B"]}"#,
                0,
            ),
            (
                r#"{"path_prefix":"/V1","categories":["A"]},{"path_prefix":"/v1/x","categories":["B"]}"#,
                0,
            ),
            (
                r#"{"path_prefix":"/v1/track","categories":["A"]},{"path_prefix":"/v1/track/","categories":["B"]}"#,
                0,
            ),
            (
                r#"{"host":"a.example","categories":["A"]},{"host":"a.example","path_prefix":"/x","categories":["B"]}"#,
                0,
            ),
            (
                r#"{"host":"a.example","categories":["A"]},{"host":"a.example:443","categories":["B"]}"#,
                0,
            ),
            (
                r#"{"route_name":"r","categories":["A"]},{"path_prefix":"/x","categories":["A"]},{"route_name":"r","path_prefix":"/y","categories":["B"]}"#,
                0,
            ),
            (
                r#"{"path_prefix":"/x","categories":["A"]},{"route_name":"r","categories":["A"]},{"path_prefix":"/x/y","route_name":"s","categories":["B"]}"#,
                0,
            ),
            (
                r#"{"path_prefix":"/","categories":["A"]},{"route_name":"r","categories":["B"]}"#,
                0,
            ),
            (
                r#"{"path_prefix":"/","categories":["A"]},{"host":"ads.example","categories":["B"]}"#,
                0,
            ),
        ] {
            let err = rules(list).unwrap_err();
            let later = list.matches("categories").count() - 1;
            assert!(
                err.contains(&format!(
                    "\"routes[{later}]\" can never apply: \"routes[{covered_by}]\""
                )),
                "{list}: {err}"
            );
        }
        // Narrower first, or rules that each match requests the other does not: accepted.
        for list in [
            r#"{"path_prefix":"/ads","categories":["B"]},{"path_prefix":"/","categories":["A"]}"#,
            r#"{"path_prefix":"/v1/track/","categories":["A"]},{"path_prefix":"/v1/track","categories":["B"]}"#,
            r#"{"host":"a.example:443","categories":["A"]},{"host":"a.example","categories":["B"]}"#,
            r#"{"host":"a.example:443","categories":["A"]},{"host":"a.example:80","categories":["B"]}"#,
            r#"{"route_name":"r","categories":["A"]},{"path_prefix":"/x","categories":["B"]}"#,
            r#"{"host":"a.example","categories":["A"]},{"path_prefix":"/x","categories":["B"]}"#,
            r#"{"path_prefix":"/v1","categories":["A"]},{"path_prefix":"/v2","categories":["B"]}"#,
        ] {
            assert!(rules(list).is_ok(), "{list}: {:?}", rules(list));
        }
    }

    #[test]
    fn empty_config_is_all_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert_eq!(Config::parse("{}").unwrap(), Config::default());
        let d = Config::default();
        assert_eq!(d.deny_status, 403);
        assert_eq!(d.max_body_bytes, 1_048_576);
        assert_eq!(d.on_missing_consent, MissingConsent::Deny);
        assert_eq!(d.match_mode, Match::All);
        assert_eq!(d.metadata_namespace, "consent_gate");
        assert_eq!(d.batch_mode, BatchMode::Filter);
        assert!(!d.dry_run);
        assert!(d.route_metadata);
        assert!(d.decision_record);
        assert!(d.decision_metadata);
    }

    #[test]
    fn the_decision_metadata_can_be_left_out() {
        let c = Config::parse(r#"{"decision_metadata":false}"#).unwrap();
        assert!(!c.decision_metadata);
        assert!(c.decision_record);
        assert_eq!(
            Config {
                decision_metadata: true,
                ..c
            },
            Config::default()
        );
        assert!(Config::parse(r#"{"decision_metadata":"no"}"#).is_err());
    }

    #[test]
    fn reads_every_key() {
        let c = Config::parse(
            r#"{"metadata_namespace":"ns","on_missing_consent":"allow","match":"any",
                "deny_status":451,"max_body_bytes":2048,"always_allow_events":["X"],
                "batch_mode":"reject","dry_run":true,"route_metadata":false,
                "routes":[{"host":"API.example.com","categories":["A","B"]},
                          {"path_prefix":"/p","route_name":"r","categories":["C"],"match":"all"}]}"#,
        )
        .unwrap();
        assert_eq!(c.metadata_namespace, "ns");
        assert_eq!(c.on_missing_consent, MissingConsent::Allow);
        assert_eq!(c.match_mode, Match::Any);
        assert_eq!(c.deny_status, 451);
        assert_eq!(c.max_body_bytes, 2048);
        assert_eq!(c.always_allow_events, vec!["X".to_string()]);
        assert_eq!(c.batch_mode, BatchMode::Reject);
        assert!(c.dry_run);
        assert!(!c.route_metadata);
        assert_eq!(c.routes[0].host, Some(("api.example.com".into(), None)));
        // A rule without its own `match` inherits the top-level one.
        assert_eq!(c.routes[0].policy.match_mode, Match::Any);
        assert_eq!(c.routes[1].policy.match_mode, Match::All);
        assert_eq!(c.routes[1].policy.categories, vec!["C".to_string()]);
    }

    #[test]
    fn errors_name_the_offending_key() {
        let cases = [
            (r#"{"colour":1}"#, "colour"),
            (r#"{"deny_status":200}"#, "deny_status"),
            (r#"{"deny_status":"403"}"#, "deny_status"),
            (r#"{"deny_status":403.5}"#, "deny_status"),
            (r#"{"max_body_bytes":0}"#, "max_body_bytes"),
            (r#"{"on_missing_consent":"maybe"}"#, "on_missing_consent"),
            (r#"{"match":"ALL"}"#, "match"),
            (r#"{"metadata_namespace":""}"#, "metadata_namespace"),
            (r#"{"always_allow_events":"x"}"#, "always_allow_events"),
            (r#"{"always_allow_events":[1]}"#, "always_allow_events[0]"),
            (r#"{"routes":{}}"#, "routes"),
            (
                r#"{"routes":[{"path_prefix":"/a"}]}"#,
                "routes[0].categories",
            ),
            (
                r#"{"routes":[{"path_prefix":"/a","categories":[]}]}"#,
                "routes[0].categories",
            ),
            (
                r#"{"routes":[{"path_prefix":"/a","categories":[""]}]}"#,
                "routes[0].categories[0]",
            ),
            (
                r#"{"routes":[{"path_prefix":"/a","categories":["A","A"]}]}"#,
                "routes[0].categories[1]",
            ),
            (r#"{"routes":[{"categories":["A"]}]}"#, "routes[0]"),
            (
                r#"{"routes":[{"path_prefix":"/a","categories":["A"],"hots":"x"}]}"#,
                "hots",
            ),
            (
                r#"{"routes":[{"path_prefix":"/a","categories":["A"],"match":"some"}]}"#,
                "routes[0].match",
            ),
            (r#"{"batch_mode":"drop"}"#, "batch_mode"),
            (r#"{"dry_run":"yes"}"#, "dry_run"),
            (r#"{"route_metadata":1}"#, "route_metadata"),
            (r#"{"match":"all","match":"any"}"#, "match"),
        ];
        for (text, key) in cases {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(&format!("\"{key}")), "{text} -> {err}");
        }
        assert!(Config::parse("[1]").unwrap_err().contains("JSON object"));
        assert!(Config::parse("{").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn rules_match_on_every_given_condition() {
        let c = Config::parse(
            r#"{"routes":[{"host":"api.example.com","path_prefix":"/v1","categories":["A"]},
                          {"route_name":"named","categories":["B"]},
                          {"host":"pinned.example.com:8443","categories":["C"]}]}"#,
        )
        .unwrap();
        let first = |route_name, authority, path| match c.rule_for(&RequestTarget {
            route_name,
            authority,
            path,
        }) {
            RuleMatch::Rule(p) => Some(p.categories[0].clone()),
            RuleMatch::None => None,
            RuleMatch::Conflicting => Some("conflict".into()),
        };
        let a = Some("A".to_string());
        assert_eq!(first("", "api.example.com", "/v1/t"), a);
        assert_eq!(first("", "API.example.com:8443", "/v1/t"), a);
        assert_eq!(first("", "api.example.com", "/v2/t"), None);
        assert_eq!(first("", "other.example.com", "/v1/t"), None);
        assert_eq!(first("named", "x", "/v2"), Some("B".into()));
        assert_eq!(first("named", "api.example.com", "/v1"), a);
        assert_eq!(first("", "pinned.example.com:8443", "/"), Some("C".into()));
        assert_eq!(first("", "pinned.example.com:443", "/"), None);
        assert_eq!(first("", "pinned.example.com.:8443", "/"), Some("C".into()));
        // The same port in another spelling, and a request that names none (it may be on the
        // rule's port): gated.
        assert_eq!(first("", "pinned.example.com:08443", "/"), Some("C".into()));
        assert_eq!(first("", "pinned.example.com", "/"), Some("C".into()));
    }

    #[test]
    fn a_rule_host_must_be_one_a_request_can_have() {
        for good in [
            "api.segment.io",
            "API.Segment.IO.",
            "api.segment.io:443",
            "127.0.0.1:8080",
            "[::1]:443",
            "[::1]",
            "my_host",
        ] {
            let config = format!(r#"{{"routes":[{{"host":"{good}","categories":["A"]}}]}}"#);
            assert!(Config::parse(&config).is_ok(), "{good}");
        }
        for bad in [
            "*.segment.io",
            "api.segment.io ",
            " api.segment.io",
            "api.segment.io,api2.segment.io",
            "https:api.segment.io",
            "api.segment.io:0",
            "api.segment.io:",
            "[::1]:",
            "api.segment.io:65536",
            "api.segment.io:https",
            "user@api.segment.io",
            "[::1",
            "[]",
            "api segment io",
        ] {
            let config = format!(r#"{{"routes":[{{"host":"{bad}","categories":["A"]}}]}}"#);
            let err = Config::parse(&config).unwrap_err();
            assert!(
                err.contains("\"routes[0].host\" must be a host name"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn no_spelling_of_a_gated_target_passes_ungated() {
        let c = Config::parse(
            r#"{"routes":[{"host":"api.example.com","path_prefix":"/v1/track","categories":["A"]}]}"#,
        )
        .unwrap();
        let gated = |authority, path| {
            c.rule_for(&RequestTarget {
                route_name: "",
                authority,
                path,
            }) != RuleMatch::None
        };
        for authority in [
            "api.example.com",
            "api.example.com.",
            "api.example.com.:80",
            "API.EXAMPLE.COM",
            "Api.Example.Com.:8080",
            "u@api.example.com",
        ] {
            assert!(gated(authority, "/v1/track"), "{authority}");
        }
        for path in [
            "/v1/track",
            "//v1/track",
            "/v1//track",
            "/x/../v1/track",
            "/./v1/track",
            "/v1/%74rack",
            "/%76%31/track",
            "/v1%2ftrack",
            "/v1\\track",
            "/V1/TRACK",
            "/v1/track;x=1",
            "/v1/track?x=1",
        ] {
            assert!(gated("api.example.com", path), "{path}");
        }
        assert!(!gated("api.example.org", "/v1/track"));
        assert!(!gated("api.example.com", "/v1/identify"));
    }

    #[test]
    fn a_rule_for_an_ip_address_gates_every_spelling_of_it() {
        for rule in ["10.0.0.5", "10.5", "0xa.0.0.5", "[::ffff:10.0.0.5]"] {
            let c = Config::parse(&format!(
                r#"{{"routes":[{{"host":"{rule}:8080","categories":["A"]}}]}}"#
            ))
            .unwrap();
            let gated = |authority| {
                c.rule_for(&RequestTarget {
                    route_name: "",
                    authority,
                    path: "/v1/track",
                }) != RuleMatch::None
            };
            for authority in [
                "10.0.0.5",
                "10.5:8080",
                "10.0.5",
                "012.0.0.5",
                "0xA.0x0.0.05",
                "167772165:8080",
                "0xa000005",
                "[::ffff:10.0.0.5]:8080",
                "[::ffff:a00:5]",
                "[0:0:0:0:0:FFFF:0A00:0005]",
            ] {
                assert!(gated(authority), "{rule}: {authority}");
            }
            for other in ["10.0.0.6", "10.0.0.5:8081", "[::10.0.0.5]", "10.0.0.5.5"] {
                assert!(!gated(other), "{rule}: {other}");
            }
        }
        // Two spellings of one address in two rules: the second never applies.
        let err = Config::parse(
            r#"{"routes":[{"host":"[2001:db8::1]","categories":["A"]},{"host":"[2001:DB8:0::1]","categories":["B"]}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("routes[1]"), "{err}");
    }

    #[test]
    fn rules_gate_the_paths_routers_fold_or_take_a_format_suffix_off() {
        let c = Config::parse(
            r#"{"routes":[{"path_prefix":"/v1/track/","categories":["A"]},
                          {"path_prefix":"/v1/identify","categories":["A"]},
                          {"path_prefix":"/seg/","categories":["A"]}]}"#,
        )
        .unwrap();
        let gated = |path| {
            let t = RequestTarget {
                route_name: "",
                authority: "h",
                path,
            };
            matches!(c.rule_for(&t), RuleMatch::Rule(_))
        };
        for path in [
            "/v1/track",
            "/v1/track.json",
            "/v1/track.json/",
            "/v1/track.json//",
            "/v1/TRACK.json?x=1",
            "/v1/trac%E2%84%AA",
            "/v1/%C4%B1dentify",
            "/v1/%C4%B0DENTIFY.xml",
            "/%C5%BFeg/v1/track",
            "/seg",
            "/x/..%252fseg/v1/track",
        ] {
            assert!(gated(path), "{path}");
        }
        for path in ["/v1/tracks", "/v1/page.json", "/v1/.track", "/segment/x"] {
            assert!(!gated(path), "{path}");
        }
    }

    #[test]
    fn readings_under_different_rules_conflict() {
        let c = Config::parse(
            r#"{"routes":[{"path_prefix":"/v1/track","categories":["A"]},
                          {"path_prefix":"/x/","categories":["B"]}]}"#,
        )
        .unwrap();
        let t = |path| RequestTarget {
            route_name: "",
            authority: "h",
            path,
        };
        assert_eq!(c.rule_for(&t("/x/../v1/track")), RuleMatch::Conflicting);
        assert!(matches!(c.rule_for(&t("/x/y")), RuleMatch::Rule(p) if p.categories == ["B"]));
    }

    #[test]
    fn rule_targets_must_be_normalised() {
        for bad in [
            r#"{"routes":[{"path_prefix":"v1","categories":["A"]}]}"#,
            r#"{"routes":[{"path_prefix":"//v1","categories":["A"]}]}"#,
            r#"{"routes":[{"path_prefix":"/a/../v1","categories":["A"]}]}"#,
            r#"{"routes":[{"path_prefix":"/v1/%74rack","categories":["A"]}]}"#,
            r#"{"routes":[{"path_prefix":"/v1?x","categories":["A"]}]}"#,
            r#"{"routes":[{"host":"https://api.example.com/","categories":["A"]}]}"#,
        ] {
            let err = Config::parse(bad).unwrap_err();
            assert!(err.contains("routes[0]."), "{bad} -> {err}");
        }
    }

    #[test]
    fn rule_targets_are_literal_and_exact() {
        // Patterns, stray white space: each would match no request and leave the route ungated.
        for (bad, key) in [
            (r#"{"path_prefix":"/v1/track*"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/.*"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/t[a-z]+"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/(track|page)"}"#, "path_prefix"),
            (r#"{"path_prefix":"^/v1/track$"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/track "}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1\\track"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/tr\u00e4ck"}"#, "path_prefix"),
            (r#"{"route_name":" ads"}"#, "route_name"),
            (r#"{"route_name":"ads\n"}"#, "route_name"),
            // Lists, templates, other pattern languages, globs in a name, host suffixes.
            (r#"{"path_prefix":"/v1/track,/v1/page"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/track;/v1/page"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/:type"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/%"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/%s"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/+"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/!track"}"#, "path_prefix"),
            (r#"{"path_prefix":"/v1/..."}"#, "path_prefix"),
            (r#"{"route_name":"*"}"#, "route_name"),
            (r#"{"route_name":"ads*"}"#, "route_name"),
            (r#"{"route_name":"ad?"}"#, "route_name"),
            (r#"{"host":".example.com"}"#, "host"),
            (r#"{"host":"ads..example.com"}"#, "host"),
        ] {
            let text = format!(
                r#"{{"routes":[{{"categories":["A"],{}}}]}}"#,
                &bad[1..bad.len() - 1]
            );
            let err = Config::parse(&text).unwrap_err();
            assert!(
                err.contains(&format!("\"routes[0].{key}\"")),
                "{text} -> {err}"
            );
        }
        // `consent_gat\u0435` ends in a Cyrillic `е`: it matches no route that says `consent_gate`.
        for bad in [" consent_gate", "consent gate", "consent_gate\t", "consent_gat\u{435}"] {
            let text = format!(r#"{{"metadata_namespace":{bad:?}}}"#);
            let err = Config::parse(&text).unwrap_err();
            assert!(err.contains("\"metadata_namespace\""), "{text} -> {err}");
        }
        // What API paths hold is still a prefix: `:` inside a segment (`events:batch`), `@`,
        // `&`, `=`, `~`, escapes of reserved characters, and a name with inner white space.
        for good in [
            r#"{"routes":[{"path_prefix":"/v1/a:b@c&e=f~g","categories":["A"]}]}"#,
            r#"{"routes":[{"path_prefix":"/v1/events:batch/..x","categories":["A"]}]}"#,
            r#"{"routes":[{"path_prefix":"/v1/a%2Fb","categories":["A"]}]}"#,
            r#"{"routes":[{"route_name":"ads api","categories":["A"]}]}"#,
        ] {
            assert!(Config::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_prefix_ending_in_a_slash_also_gates_the_path_without_it() {
        let c = Config::parse(r#"{"routes":[{"path_prefix":"/v1/track/","categories":["A"]}]}"#)
            .unwrap();
        let gated = |path| {
            matches!(
                c.rule_for(&RequestTarget {
                    route_name: "",
                    authority: "h",
                    path,
                }),
                RuleMatch::Rule(_)
            )
        };
        assert!(gated("/v1/track/"));
        assert!(gated("/v1/track/x"));
        assert!(gated("/v1/track"));
        assert!(gated("/V1/Track?x=1"));
        assert!(!gated("/v1/trackx"));
        assert!(!gated("/v1/trac"));
        let root = Config::parse(r#"{"routes":[{"path_prefix":"/","categories":["A"]}]}"#).unwrap();
        assert!(matches!(
            root.rule_for(&RequestTarget {
                route_name: "",
                authority: "h",
                path: "/x",
            }),
            RuleMatch::Rule(_)
        ));
    }

    #[test]
    fn an_authority_readers_split_differently_is_ambiguous_where_a_rule_names_a_host() {
        let c =
            Config::parse(r#"{"routes":[{"host":"gated.example","categories":["A"]}]}"#).unwrap();
        let rule = |authority| {
            c.rule_for(&RequestTarget {
                route_name: "",
                authority,
                path: "/v1/track",
            })
        };
        // Express takes each of these for gated.example (it cuts at the first `:`).
        for odd in [
            "gated.example:80:80",
            "gated.example:x",
            "gated.example:80,other.example",
            "gated.example:443,other.example",
            "u@gated.example",
            "",
        ] {
            assert_eq!(rule(odd), RuleMatch::Conflicting, "{odd:?}");
        }
        for plain in ["gated.example", "GATED.example.:443", "gated.example:"] {
            assert!(matches!(rule(plain), RuleMatch::Rule(_)), "{plain:?}");
        }
        assert_eq!(rule("other.example:8080"), RuleMatch::None);
        assert_eq!(rule("[::1]:80"), RuleMatch::None);
        // Without a host rule the authority is not read at all.
        let paths =
            Config::parse(r#"{"routes":[{"path_prefix":"/v1","categories":["A"]}]}"#).unwrap();
        assert!(matches!(
            paths.rule_for(&RequestTarget {
                route_name: "",
                authority: "gated.example:80:80",
                path: "/v1/track",
            }),
            RuleMatch::Rule(_)
        ));
    }

    #[test]
    fn warns_when_nothing_can_be_gated() {
        assert!(Config::default().warnings().is_empty());
        let c = Config::parse(r#"{"route_metadata":false}"#).unwrap();
        assert!(c.warnings()[0].contains("gates nothing"));
        // Left on after a trial, dry run refuses nothing.
        let c = Config::parse(r#"{"dry_run":true}"#).unwrap();
        assert!(c.warnings()[0].contains("dry_run is on: nothing is refused"));
    }
}
