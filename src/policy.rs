//! A route's consent policy: the categories it requires and how they combine. It comes from the
//! route's metadata (or, in the dynamic module, its per-route configuration), or from a `routes`
//! rule. Metadata that says anything the filter does not understand is an error, never ignored:
//! a typo must not switch the gate off.

use std::sync::Arc;

use crate::event::spelled_alike;
use crate::settings::Value;
use serde::Deserialize;

use crate::settings;

/// A route may require at most this many categories (they are tracked as bits of a `u64`).
pub const MAX_CATEGORIES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    /// Every required category must be consented.
    All,
    /// At least one required category must be consented.
    Any,
}

impl Match {
    pub fn as_str(self) -> &'static str {
        match self {
            Match::All => "all",
            Match::Any => "any",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePolicy {
    /// Non-empty, unique, in configuration order.
    pub categories: Vec<String>,
    pub match_mode: Match,
    /// The destination's name in Segment's `integrations` object: when set, an event that turns
    /// it off is not forwarded either.
    pub destination: Option<String>,
    /// Bits of `categories` that a `Sec-GPC: 1` request withdraws.
    pub gpc_denies: u64,
    /// Each category's jsoniter hashes (see [`crate::event::jsoniter_hashes`]), in the same
    /// order: computed once, for every key in `categoryPreferences` that is not one exactly.
    pub category_hashes: Vec<[u64; 2]>,
    /// No usual category name (see [`crate::event::USUAL_CATEGORIES`]) but the categories
    /// themselves has one of those hashes: such keys need not be hashed.
    pub usual_names_hashed_apart: bool,
}

impl RoutePolicy {
    /// A policy with only categories and a match mode.
    pub fn new(categories: Vec<String>, match_mode: Match) -> RoutePolicy {
        let category_hashes: Vec<[u64; 2]> = categories
            .iter()
            .map(|c| crate::event::jsoniter_hashes(c.as_bytes()))
            .collect();
        RoutePolicy {
            // A name that is a category is read exactly, never hashed.
            usual_names_hashed_apart: crate::event::USUAL_CATEGORIES
                .iter()
                .filter(|name| !categories.iter().any(|c| c == *name))
                .all(|name| {
                    crate::event::hash_position(name.as_bytes(), &category_hashes).is_none()
                }),
            category_hashes,
            categories,
            match_mode,
            destination: None,
            gpc_denies: 0,
        }
    }

    /// Whether the route's destination is one that Segment delivers to only when an event's
    /// `integrations` names it on: Salesforce (Facade's `enabled`, which Segment's libraries and
    /// receivers use, holds it off by default, whatever `All` says; Segment's Salesforce
    /// destination takes only events that enable it). Compared in any ASCII case: the stricter
    /// reading of a name an operator may write otherwise.
    pub fn off_unless_named(&self) -> bool {
        self.destination
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case("Salesforce"))
    }

    /// Adds `destination` and `gpc_denies` as written, checked against the categories. `at` is
    /// the keys' prefix in error messages (`routes[0].`, or empty for route metadata).
    pub fn with_extras(
        mut self,
        at: &str,
        destination: Option<String>,
        gpc_denies: Option<Vec<String>>,
    ) -> Result<RoutePolicy, String> {
        if let Some(name) = destination {
            if name.is_empty() {
                return Err(format!("\"{at}destination\" must not be empty"));
            }
            if name == "All" {
                return Err(format!(
                    "\"{at}destination\" must name a destination, not \"All\" (the integrations object's switch for every destination)"
                ));
            }
            self.destination = Some(name);
        }
        if let Some(names) = gpc_denies {
            if names.is_empty() {
                return Err(format!("\"{at}gpc_denies\" must not be empty"));
            }
            for (i, name) in names.iter().enumerate() {
                let Some(bit) = self.categories.iter().position(|c| c == name) else {
                    return Err(format!(
                        "\"{at}gpc_denies[{i}]\" names \"{name}\", which the route does not require: it would withdraw nothing"
                    ));
                };
                let bit = 1u64 << bit;
                if self.gpc_denies & bit != 0 {
                    return Err(format!("\"{at}gpc_denies[{i}]\" repeats \"{name}\""));
                }
                self.gpc_denies |= bit;
            }
        }
        Ok(self)
    }
}

/// What a route says about consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSetting {
    /// Nothing: the route is not configured (the `routes` rules and `on_unconfigured_route`
    /// decide).
    Unconfigured,
    /// `exempt: true`: the route opts out of consent gating, on purpose.
    Exempt,
    Gated(Arc<RoutePolicy>),
}

/// A route's metadata namespace (or per-route configuration) as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetting {
    category: Option<String>,
    categories: Option<Vec<String>>,
    #[serde(rename = "match")]
    match_mode: Option<Match>,
    exempt: Option<bool>,
    destination: Option<String>,
    gpc_denies: Option<Vec<String>>,
}

impl RouteSetting {
    /// Reads the route's metadata namespace (from Envoy's typed metadata) or a per-route
    /// configuration. Anything unknown, mistyped or contradictory is an error naming the key and
    /// the value found.
    pub fn from_value(value: &Value, default_match: Match) -> Result<RouteSetting, String> {
        Self::from_raw(settings::from_value(value)?, default_match)
    }

    /// Reads a per-route configuration's JSON text.
    pub fn from_json(text: &str, default_match: Match) -> Result<RouteSetting, String> {
        Self::from_raw(settings::from_str(text)?, default_match)
    }

    fn from_raw(raw: RawSetting, default_match: Match) -> Result<RouteSetting, String> {
        let names = match (raw.category, raw.categories) {
            (Some(_), Some(_)) => {
                return Err("has both \"category\" and \"categories\"; use one".into())
            }
            (Some(one), None) => vec![one],
            (None, Some(list)) => {
                if list.is_empty() {
                    return Err("\"categories\" is empty".into());
                }
                list
            }
            (None, None) => {
                for (key, given) in [
                    ("match", raw.match_mode.is_some()),
                    ("destination", raw.destination.is_some()),
                    ("gpc_denies", raw.gpc_denies.is_some()),
                ] {
                    if given {
                        return Err(format!(
                            "has \"{key}\" but no \"category\" or \"categories\""
                        ));
                    }
                }
                // Present but saying nothing (`{}`, `"exempt": false`): a mistake, not an
                // unconfigured route. Taken as absent it would pass the route's requests
                // ungated, and as a per-route configuration also hide the route's metadata.
                return if raw.exempt == Some(true) {
                    Ok(RouteSetting::Exempt)
                } else {
                    Err("has no \"category\" or \"categories\" (nor \"exempt\": true)".into())
                };
            }
        };
        if raw.exempt == Some(true) {
            return Err(
                "has \"exempt\": true and categories; an exempt route requires none".into(),
            );
        }
        validate_categories(&names)?;
        let policy = RoutePolicy::new(names, raw.match_mode.unwrap_or(default_match)).with_extras(
            "",
            raw.destination,
            raw.gpc_denies,
        )?;
        Ok(RouteSetting::Gated(Arc::new(policy)))
    }
}

/// Category names: 1 to 64 of them, none empty, none repeated.
pub fn validate_categories(names: &[String]) -> Result<(), String> {
    if names.len() > MAX_CATEGORIES {
        return Err(format!("names more than {MAX_CATEGORIES} categories"));
    }
    for (i, c) in names.iter().enumerate() {
        if c.is_empty() {
            return Err("has an empty category name".into());
        }
        // Names clients never send. Under RudderStack's format, which denies only the IDs an
        // event lists, such a category would let every event through.
        let shown = || settings::shown(c);
        if c.starts_with(char::is_whitespace) || c.ends_with(char::is_whitespace) {
            return Err(format!(
                "names the category \"{}\" with white space at an end (events name categories without it)",
                shown()
            ));
        }
        if c.chars().any(char::is_control) {
            return Err(format!(
                "names the category \"{}\" with a control character",
                shown()
            ));
        }
        if let Some(ch) = c.chars().find(|&ch| invisible(ch)) {
            return Err(format!(
                "names the category \"{}\" with the invisible character U+{:04X} (pasted from a dashboard?): events name categories without it",
                shown(),
                u32::from(ch)
            ));
        }
        if c.contains(is_comma) {
            return Err(format!(
                "names the category \"{c}\", which holds a comma: several categories are a list (`categories: [A, B]`)"
            ));
        }
        if names.get(..i).is_some_and(|before| before.contains(c)) {
            return Err(format!("repeats the category \"{c}\""));
        }
        // cJSON finds keys without ASCII case, Go with its folding, Facade and key converters by
        // letters and digits: to them, both names read one key.
        if let Some(other) = names
            .get(..i)
            .and_then(|before| before.iter().find(|b| spelled_alike(b, c)))
        {
            return Err(format!(
                "names the categories \"{other}\" and \"{c}\", which differ only in case or in what is not a letter or digit (readers that find keys without case, or by letters and digits, read them as one)"
            ));
        }
    }
    Ok(())
}

/// A comma in any script's spelling (`、` and `，` separate lists as `,` does).
fn is_comma(ch: char) -> bool {
    matches!(
        ch,
        ',' | '\u{60c}'
            | '\u{1802}'
            | '\u{1808}'
            | '\u{2e41}'
            | '\u{3001}'
            | '\u{fe10}'
            | '\u{fe11}'
            | '\u{fe50}'
            | '\u{fe51}'
            | '\u{ff0c}'
            | '\u{ff64}'
            | '\u{55d}'
            | '\u{7f8}'
            | '\u{1363}'
            | '\u{2e32}'
            | '\u{2e34}'
            | '\u{2e4c}'
            | '\u{2e4e}'
            | '\u{a4fe}'
            | '\u{a60d}'
            | '\u{a6f5}'
            | '\u{16e97}'
            | '\u{1da87}'
    )
}

/// White space other than a plain space, the characters Unicode says to show as nothing (its
/// default-ignorable code points: zero-width spaces and joiners, the soft hyphen, direction
/// marks, variation selectors, the byte-order mark, tags), its other format characters
/// (interlinear annotation marks, number signs) and blanks drawn as nothing (the braille blank).
fn invisible(ch: char) -> bool {
    (ch.is_whitespace() && ch != ' ')
        || matches!(
            ch,
            '\u{ad}'
                | '\u{34f}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
                | '\u{2800}'
                | '\u{115f}'..='\u{1160}'
                | '\u{17b4}'..='\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0000}'..='\u{e0fff}'
        )
}

/// Envoy's convention for a filter's own metadata namespace, which operators may add.
const ENVOY_FILTER_PREFIX: &str = "envoy.filters.http.";

/// Whether `key`, a namespace in a route's metadata, misspells `namespace` (and is not it): the
/// same once ASCII case, white space, `-`, `_` and `.` and Envoy's `envoy.filters.http.`
/// prefix are set aside (`consent-gate`, `ConsentGate`, `envoy.filters.http.consent_gate` for
/// `consent_gate`). A route that carries one meant to be gated; taken for an unconfigured
/// route, it would pass ungated.
pub fn misspells_namespace(key: &[u8], namespace: &str) -> bool {
    fn folded(text: &[u8]) -> impl Iterator<Item = u8> + '_ {
        let prefix = ENVOY_FILTER_PREFIX.as_bytes();
        let bare = match text.get(..prefix.len()) {
            Some(head) if head.eq_ignore_ascii_case(prefix) => text.get(prefix.len()..),
            _ => Some(text),
        };
        bare.unwrap_or_default()
            .iter()
            .filter(|b| !matches!(b, b'-' | b'_' | b'.') && !b.is_ascii_whitespace())
            .map(u8::to_ascii_lowercase)
    }
    key != namespace.as_bytes() && folded(key).eq(folded(namespace.as_bytes()))
}

/// What a route's metadata says when it holds `found`, a misspelling of the namespace, and not
/// the namespace itself.
pub fn misspelled_namespace(found: &[u8]) -> String {
    format!(
        "is absent, but the route has \"{}\", a misspelling of it: namespaces are matched exactly (rename it, or set metadata_namespace)",
        crate::settings::shown(&String::from_utf8_lossy(found))
    )
}

/// The likeliest misspellings of `namespace` (see [`misspells_namespace`]), for a host that
/// looks namespaces up by name and cannot list them: its words joined by `_`, `-`, `.` or
/// nothing, in lower, upper, title and camel case, and in lower case after Envoy's prefix.
pub fn namespace_misspellings(namespace: &str) -> Vec<String> {
    let bare = namespace
        .strip_prefix(ENVOY_FILTER_PREFIX)
        .unwrap_or(namespace);
    // Words: between separators, and before an upper-case letter that follows a lower-case one.
    let mut words: Vec<String> = Vec::new();
    let mut previous_lower = false;
    for c in bare.chars() {
        if matches!(c, '-' | '_' | '.') {
            words.push(String::new());
            previous_lower = false;
            continue;
        }
        if words.is_empty() || (c.is_ascii_uppercase() && previous_lower) {
            words.push(String::new());
        }
        if let Some(word) = words.last_mut() {
            word.push(c.to_ascii_lowercase());
        }
        previous_lower = c.is_ascii_lowercase();
    }
    words.retain(|w| !w.is_empty());
    let title = |w: &String| {
        let mut t = w.clone();
        if let Some(first) = t.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        t
    };
    let mut out: Vec<String> = Vec::new();
    for separator in ["_", "-", ".", ""] {
        let lower = words.join(separator);
        let camel: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { w.clone() } else { title(w) })
            .collect();
        let titled: Vec<String> = words.iter().map(title).collect();
        // The first word's capital alone (`Consent_gate`), as a sentence starts.
        let sentence: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { title(w) } else { w.clone() })
            .collect();
        for spelling in [
            format!("{ENVOY_FILTER_PREFIX}{lower}"),
            lower.to_ascii_uppercase(),
            camel.join(separator),
            titled.join(separator),
            sentence.join(separator),
            lower,
        ] {
            if spelling != namespace && !out.contains(&spelling) {
                out.push(spelling);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(json: &str) -> Result<RouteSetting, String> {
        RouteSetting::from_json(json, Match::All)
    }

    #[test]
    fn reads_typed_metadata_values_alike() {
        let metadata =
            |text: &str| RouteSetting::from_value(&Value::parse(text).unwrap(), Match::All);
        assert_eq!(
            metadata(r#"{"category": "Ads"}"#),
            setting(r#"{"category":"Ads"}"#)
        );
        assert_eq!(
            metadata(r#"{"category": 5}"#).unwrap_err(),
            "\"category\" must be a string, got the number 5"
        );
        assert_eq!(
            metadata(r#"["Ads"]"#).unwrap_err(),
            "must be an object, got a list"
        );
    }

    fn gated(categories: &[&str], match_mode: Match) -> RouteSetting {
        RouteSetting::Gated(Arc::new(RoutePolicy::new(
            categories.iter().map(|c| c.to_string()).collect(),
            match_mode,
        )))
    }

    #[test]
    fn reads_a_policy() {
        assert_eq!(
            setting(r#"{"category":"Ads"}"#),
            Ok(gated(&["Ads"], Match::All))
        );
        assert_eq!(
            setting(r#"{"categories":["A","B"],"match":"any"}"#),
            Ok(gated(&["A", "B"], Match::Any))
        );
        assert_eq!(
            RouteSetting::from_json(r#"{"category":"A"}"#, Match::Any),
            Ok(gated(&["A"], Match::Any))
        );
        // Present but empty is a mistake, not an unconfigured route.
        let nothing = Err("has no \"category\" or \"categories\" (nor \"exempt\": true)".into());
        assert_eq!(setting("{}"), nothing);
        assert_eq!(setting(r#"{"exempt":false}"#), nothing);
        assert_eq!(setting(r#"{"exempt":true}"#), Ok(RouteSetting::Exempt));
    }

    #[test]
    fn every_mistake_is_an_error_naming_the_key_and_type() {
        let cases = [
            (
                r#"{"categroy":"Ads"}"#,
                "unknown key \"categroy\" (the string \"Ads\")",
            ),
            (r#"{"Category":"Ads"}"#, "unknown key \"Category\""),
            (
                r#"{"category":"Ads","mtach":"any"}"#,
                "unknown key \"mtach\"",
            ),
            (
                r#"{"category":["Ads"]}"#,
                "\"category\" must be a string, got a list",
            ),
            (
                r#"{"category":5}"#,
                "\"category\" must be a string, got the number 5",
            ),
            (
                r#"{"category":true}"#,
                "\"category\" must be a string, got true",
            ),
            (
                r#"{"category":null}"#,
                "\"category\" is null: give it a value, or leave the key out",
            ),
            (
                r#"{"categories":"Ads"}"#,
                "\"categories\" must be a list, got the string \"Ads\"",
            ),
            (
                r#"{"categories":["A",5]}"#,
                "\"categories[1]\" must be a string, got the number 5",
            ),
            (r#"{"categories":[]}"#, "\"categories\" is empty"),
            (r#"{"categories":["A","A"]}"#, "repeats the category \"A\""),
            (
                r#"{"categories":["Ads","ADS"]}"#,
                "\"Ads\" and \"ADS\", which differ only in case",
            ),
            (r#"{"category":""}"#, "empty category name"),
            // Names no client sends: under RudderStack's deny-only format they deny nothing.
            (
                r#"{"category":"Advertising "}"#,
                "\"Advertising \" with white space at an end",
            ),
            (
                r#"{"categories":["A","\tB"]}"#,
                "\"\\tB\" with white space at an end",
            ),
            (r#"{"category":"A\u0000B"}"#, "with a control character"),
            (
                r#"{"category":"C0004\u200b"}"#,
                "invisible character U+200B",
            ),
            (
                r#"{"category":"\ufeffC0004"}"#,
                "invisible character U+FEFF",
            ),
            (
                r#"{"category":"Data\u00a0Sharing"}"#,
                "invisible character U+00A0",
            ),
            (
                r#"{"category":"Adver\u00adtising"}"#,
                "invisible character U+00AD",
            ),
            (
                r#"{"category":"Advertising, Analytics"}"#,
                "holds a comma: several categories are a list",
            ),
            (
                r#"{"categories":["Data Sharing","DataSharing"]}"#,
                "differ only in case or in what is not a letter or digit",
            ),
            (r#"{"categories":["Ads","ADS"]}"#, "differ only in case"),
            (
                r#"{"categories":["Werbung","werbung_"]}"#,
                "differ only in case",
            ),
            (
                r#"{"category":"C0001\u1363C0004"}"#,
                "holds a comma: several categories are a list",
            ),
            (
                r#"{"category":"Advertising\uff0cAnalytics"}"#,
                "holds a comma: several categories are a list",
            ),
            (
                r#"{"category":"C0001\u3001C0004"}"#,
                "holds a comma: several categories are a list",
            ),
            (
                r#"{"category":"C0004\ufff9"}"#,
                "invisible character U+FFF9",
            ),
            (
                r#"{"category":"\u2800C0004"}"#,
                "invisible character U+2800",
            ),
            (
                r#"{"category":"C\u06dd0004"}"#,
                "invisible character U+06DD",
            ),
            (r#"{"category":"A","categories":["B"]}"#, "both"),
            (
                r#"{"category":"A","match":"most"}"#,
                "\"match\" must be one of \"all\", \"any\", got \"most\"",
            ),
            (r#"{"match":"all"}"#, "no \"category\""),
            (
                r#"{"exempt":"yes"}"#,
                "\"exempt\" must be true or false, got the string \"yes\"",
            ),
            (
                r#"{"exempt":null}"#,
                "\"exempt\" is null: give it a value, or leave the key out",
            ),
            (
                r#"{"category":"A","category":"B"}"#,
                "the key \"category\" is given twice",
            ),
            (r#"{"exempt":true,"category":"A"}"#, "exempt"),
            (r#"["A"]"#, "must be an object, got a list"),
        ];
        for (json, want) in cases {
            let err = setting(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
        // Names in other scripts are other names.
        assert!(setting(r#"{"categories":["\u5e83\u544a","\u5206\u6790"]}"#).is_ok());
    }

    #[test]
    fn misspelled_namespaces_are_told_apart_from_others() {
        for key in [
            "consent-gate",
            "Consent_Gate",
            "consentgate",
            "ConsentGate",
            "consent.gate",
            "CONSENT_GATE",
            "envoy.filters.http.consent_gate",
            "Envoy.Filters.HTTP.consent-gate",
            "Consent_gate",
            "consent_gate ",
            " consent gate",
            "consent_gate\t",
        ] {
            assert!(misspells_namespace(key.as_bytes(), "consent_gate"), "{key}");
        }
        for key in [
            "consent_gate",
            "consent_gates",
            "consent",
            "gate_consent",
            "istio",
        ] {
            assert!(
                !misspells_namespace(key.as_bytes(), "consent_gate"),
                "{key}"
            );
        }
        assert!(misspells_namespace(b"consent_gate", "consent-gate"));
        let probes = namespace_misspellings("consent_gate");
        for key in [
            "consent-gate",
            "consentgate",
            "ConsentGate",
            "consentGate",
            "Consent_Gate",
            "CONSENT_GATE",
            "consent.gate",
            "envoy.filters.http.consent_gate",
            "envoy.filters.http.consent-gate",
            "Consent_gate",
            "Consent-gate",
            "Consentgate",
        ] {
            assert!(probes.iter().any(|p| p == key), "{key} in {probes:?}");
        }
        assert!(!probes.iter().any(|p| p == "consent_gate"));
        assert!(probes
            .iter()
            .all(|p| misspells_namespace(p.as_bytes(), "consent_gate")));
        assert!(probes.len() <= 24, "{probes:?}");
        // A camel-case namespace splits into its words.
        assert!(namespace_misspellings("consentGate")
            .iter()
            .any(|p| p == "consent_gate"));
    }
}
