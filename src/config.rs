//! The plugin configuration: parsed once at configure time, every key validated, and every error
//! naming the key it is about, so Envoy's refusal to start says what to fix.

use crate::json::{ParseError, Value};
use crate::policy::{Match, RoutePolicy, MAX_CATEGORIES};

/// What to do with an event that carries no `context.consent.categoryPreferences`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingConsent {
    Deny,
    Allow,
}

/// What to do with a batch in which some items are denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub match_mode: Match,
    pub deny_status: u16,
    pub max_body_bytes: usize,
    pub always_allow_events: Vec<String>,
    pub routes: Vec<RouteRule>,
    pub batch_mode: BatchMode,
    pub dry_run: bool,
    /// Whether route metadata is read at all (false: `routes` rules only, which is cheaper).
    pub route_metadata: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            metadata_namespace: "consent_gate".into(),
            on_missing_consent: MissingConsent::Deny,
            match_mode: Match::All,
            deny_status: 403,
            max_body_bytes: 1_048_576,
            always_allow_events: vec![
                "Segment Consent Preference Updated".into(),
                "Consent Change".into(),
            ],
            routes: Vec::new(),
            batch_mode: BatchMode::Filter,
            dry_run: false,
            route_metadata: true,
        }
    }
}

/// A `routes` rule: gates requests that match every condition it gives.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteRule {
    pub route_name: Option<String>,
    /// Lower-cased; compared with the request authority.
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub policy: RoutePolicy,
}

/// What a rule is matched against.
pub struct RequestTarget<'a> {
    pub route_name: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
}

impl RouteRule {
    pub fn matches(&self, target: &RequestTarget) -> bool {
        self.route_name
            .as_deref()
            .is_none_or(|n| n == target.route_name)
            && self
                .host
                .as_deref()
                .is_none_or(|h| host_matches(h, target.authority))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| target.path.starts_with(p))
    }
}

/// `host` matches the authority exactly (case-insensitive); a host given without a port also
/// matches the authority with any port.
fn host_matches(host: &str, authority: &str) -> bool {
    if authority.eq_ignore_ascii_case(host) {
        return true;
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

impl Config {
    /// The first rule that matches, if any.
    pub fn rule_for(&self, target: &RequestTarget) -> Option<&RoutePolicy> {
        self.routes
            .iter()
            .find(|r| r.matches(target))
            .map(|r| &r.policy)
    }

    /// Parses the plugin configuration text. An empty text means all defaults.
    pub fn parse(text: &str) -> Result<Config, String> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let root = Value::parse(text).map_err(|e| match e {
            ParseError::Syntax(at) => {
                format!("plugin configuration is not valid JSON (at byte {at})")
            }
            ParseError::DuplicateKey(k) => {
                format!("plugin configuration has the key \"{k}\" twice")
            }
        })?;
        let Value::Object(members) = root else {
            return Err(format!(
                "plugin configuration must be a JSON object, got {}",
                root.kind()
            ));
        };
        let mut config = Config::default();
        for (key, value) in &members {
            let key = key.as_str();
            match key {
                "metadata_namespace" => config.metadata_namespace = non_empty_string(key, value)?,
                "on_missing_consent" => {
                    config.on_missing_consent = match enum_value(key, value, &["deny", "allow"])? {
                        "allow" => MissingConsent::Allow,
                        _ => MissingConsent::Deny,
                    }
                }
                "match" => config.match_mode = match_value(key, value)?,
                "deny_status" => config.deny_status = integer(key, value, 400, 599)? as u16,
                "max_body_bytes" => {
                    config.max_body_bytes = integer(key, value, 1, u32::MAX as u64)? as usize
                }
                "always_allow_events" => {
                    config.always_allow_events = string_list(key, value, true)?
                }
                "routes" => config.routes = route_rules(key, value)?,
                "batch_mode" => {
                    config.batch_mode = match enum_value(key, value, &["filter", "reject"])? {
                        "reject" => BatchMode::Reject,
                        _ => BatchMode::Filter,
                    }
                }
                "dry_run" => config.dry_run = boolean(key, value)?,
                "route_metadata" => config.route_metadata = boolean(key, value)?,
                other => return Err(format!("unknown configuration key \"{other}\"")),
            }
        }
        // A rule's own `match` wins; the rest inherit the top-level one, whatever the key order.
        for (rule, raw) in config.routes.iter_mut().zip(raw_rules(&members)) {
            if !has_key(raw, "match") {
                rule.policy.match_mode = config.match_mode;
            }
        }
        Ok(config)
    }
}

fn raw_rules(members: &[(String, Value)]) -> &[Value] {
    match members.iter().find(|(k, _)| k == "routes") {
        Some((_, Value::Array(items))) => items,
        _ => &[],
    }
}

fn has_key(value: &Value, key: &str) -> bool {
    matches!(value, Value::Object(m) if m.iter().any(|(k, _)| k == key))
}

fn non_empty_string(key: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::String(_) => Err(format!("\"{key}\" must not be empty")),
        other => Err(format!("\"{key}\" must be a string, got {}", other.kind())),
    }
}

fn enum_value<'v>(key: &str, value: &'v Value, allowed: &[&str]) -> Result<&'v str, String> {
    match value {
        Value::String(s) if allowed.contains(&s.as_str()) => Ok(s.as_str()),
        _ => Err(format!(
            "\"{key}\" must be one of {}, got {}",
            allowed
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", "),
            describe(value)
        )),
    }
}

fn match_value(key: &str, value: &Value) -> Result<Match, String> {
    Ok(match enum_value(key, value, &["all", "any"])? {
        "any" => Match::Any,
        _ => Match::All,
    })
}

fn integer(key: &str, value: &Value, min: u64, max: u64) -> Result<u64, String> {
    match value {
        Value::Number(n) => match n.parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(format!(
                "\"{key}\" must be an integer from {min} to {max}, got {n}"
            )),
        },
        _ => Err(format!(
            "\"{key}\" must be an integer from {min} to {max}, got {}",
            describe(value)
        )),
    }
}

fn boolean(key: &str, value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        other => Err(format!(
            "\"{key}\" must be true or false, got {}",
            describe(other)
        )),
    }
}

/// A list of strings; category names must also be non-empty and unique.
fn string_list(key: &str, value: &Value, allow_empty_list: bool) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "\"{key}\" must be a list of strings, got {}",
            value.kind()
        ));
    };
    if items.is_empty() && !allow_empty_list {
        return Err(format!("\"{key}\" must not be empty"));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) if s.is_empty() => {
                return Err(format!("\"{key}[{i}]\" must not be empty"))
            }
            Value::String(s) if out.contains(s) => {
                return Err(format!("\"{key}[{i}]\" repeats \"{s}\""))
            }
            Value::String(s) => out.push(s.clone()),
            other => {
                return Err(format!(
                    "\"{key}[{i}]\" must be a string, got {}",
                    other.kind()
                ))
            }
        }
    }
    Ok(out)
}

fn route_rules(key: &str, value: &Value) -> Result<Vec<RouteRule>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "\"{key}\" must be a list of rules, got {}",
            value.kind()
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| route_rule(&format!("{key}[{i}]"), item))
        .collect()
}

fn route_rule(at: &str, value: &Value) -> Result<RouteRule, String> {
    let Value::Object(members) = value else {
        return Err(format!("\"{at}\" must be an object, got {}", value.kind()));
    };
    let mut rule = RouteRule {
        route_name: None,
        host: None,
        path_prefix: None,
        policy: RoutePolicy {
            categories: Vec::new(),
            match_mode: Match::All,
        },
    };
    let mut has_categories = false;
    for (key, v) in members {
        let path = format!("{at}.{key}");
        match key.as_str() {
            "route_name" => rule.route_name = Some(non_empty_string(&path, v)?),
            "host" => rule.host = Some(non_empty_string(&path, v)?.to_ascii_lowercase()),
            "path_prefix" => rule.path_prefix = Some(non_empty_string(&path, v)?),
            "categories" => {
                rule.policy.categories = string_list(&path, v, false)?;
                if rule.policy.categories.len() > MAX_CATEGORIES {
                    return Err(format!(
                        "\"{path}\" has more than {MAX_CATEGORIES} categories"
                    ));
                }
                has_categories = true;
            }
            "match" => rule.policy.match_mode = match_value(&path, v)?,
            other => return Err(format!("unknown key \"{other}\" in \"{at}\"")),
        }
    }
    if !has_categories {
        return Err(format!("\"{at}.categories\" is required"));
    }
    if rule.route_name.is_none() && rule.host.is_none() && rule.path_prefix.is_none() {
        return Err(format!(
            "\"{at}\" needs at least one of route_name, host, path_prefix"
        ));
    }
    Ok(rule)
}

/// A short description of a wrong value for an error message (never more than a few characters
/// of it: the configuration is not secret, but log lines should stay short).
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= 40 => format!("\"{s}\""),
        Value::Number(n) => n.clone(),
        Value::Bool(b) => format!("{b}"),
        other => other.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.routes[0].host.as_deref(), Some("api.example.com"));
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
                          {"route_name":"named","categories":["B"]}]}"#,
        )
        .unwrap();
        let t = |route_name, authority, path| RequestTarget {
            route_name,
            authority,
            path,
        };
        let first = |t: RequestTarget| c.rule_for(&t).map(|p| p.categories[0].clone());
        assert_eq!(first(t("", "api.example.com", "/v1/t")), Some("A".into()));
        assert_eq!(
            first(t("", "API.example.com:8443", "/v1/t")),
            Some("A".into())
        );
        assert_eq!(first(t("", "api.example.com", "/v2/t")), None);
        assert_eq!(first(t("", "other.example.com", "/v1/t")), None);
        assert_eq!(first(t("named", "x", "/v2")), Some("B".into()));
        assert_eq!(
            first(t("named", "api.example.com", "/v1")),
            Some("A".into())
        );
    }
}
