//! A route's consent policy: the categories it requires and how they combine. It comes from the
//! route's metadata (or, in the dynamic module, its per-route configuration), or from a `routes`
//! rule. Metadata that says anything the filter does not understand is an error, never ignored:
//! a typo must not switch the gate off.

use std::sync::Arc;

use crate::json::Value;

/// A route may require at most this many categories (they are tracked as bits of a `u64`).
pub const MAX_CATEGORIES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The keys a route's metadata may hold, with the type each must have.
const KEYS: [(&str, &str); 4] = [
    ("category", "a string"),
    ("categories", "a list of strings"),
    ("match", "\"all\" or \"any\""),
    ("exempt", "true or false"),
];

impl RouteSetting {
    /// Reads the route's metadata namespace (a JSON object: from Envoy's typed metadata, or a
    /// per-route configuration). Anything unknown, mistyped or contradictory is an error naming
    /// the key and the type found.
    pub fn from_value(value: &Value, default_match: Match) -> Result<RouteSetting, String> {
        let Value::Object(members) = value else {
            return Err(format!("must be a struct, got {}", value.kind()));
        };
        let mut category = None;
        let mut categories = None;
        let mut match_mode = None;
        let mut exempt = false;
        for (key, v) in members {
            let wrong = |k: &str| {
                let want = KEYS.iter().find(|(n, _)| *n == k).map_or("", |(_, t)| *t);
                format!("\"{k}\" must be {want}, got {}", describe(v))
            };
            match key.as_str() {
                "category" => match v {
                    Value::String(s) => category = Some(s.clone()),
                    _ => return Err(wrong(key)),
                },
                "categories" => match v {
                    Value::Array(items) => {
                        let mut names = Vec::with_capacity(items.len());
                        for (i, item) in items.iter().enumerate() {
                            match item {
                                Value::String(s) => names.push(s.clone()),
                                other => {
                                    return Err(format!(
                                        "\"categories[{i}]\" must be a string, got {}",
                                        describe(other)
                                    ))
                                }
                            }
                        }
                        categories = Some(names);
                    }
                    _ => return Err(wrong(key)),
                },
                "match" => {
                    match_mode = Some(match v {
                        Value::String(s) if s == "all" => Match::All,
                        Value::String(s) if s == "any" => Match::Any,
                        _ => return Err(wrong(key)),
                    })
                }
                "exempt" => match v {
                    Value::Bool(b) => exempt = *b,
                    _ => return Err(wrong(key)),
                },
                other => {
                    return Err(format!(
                        "unknown key \"{other}\" ({}); the keys are {}",
                        describe(v),
                        KEYS.iter()
                            .map(|(k, _)| format!("\"{k}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
        let names = match (category, categories) {
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
                if match_mode.is_some() {
                    return Err("has \"match\" but no \"category\" or \"categories\"".into());
                }
                return Ok(if exempt {
                    RouteSetting::Exempt
                } else {
                    RouteSetting::Unconfigured
                });
            }
        };
        if exempt {
            return Err(
                "has \"exempt\": true and categories; an exempt route requires none".into(),
            );
        }
        validate_categories(&names)?;
        Ok(RouteSetting::Gated(Arc::new(RoutePolicy {
            categories: names,
            match_mode: match_mode.unwrap_or(default_match),
        })))
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
        if names.get(..i).is_some_and(|before| before.contains(c)) {
            return Err(format!("repeats the category \"{c}\""));
        }
    }
    Ok(())
}

/// A wrong value, described for a log line: its type, and short scalars themselves.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= 40 => format!("the string \"{s}\""),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("{b}"),
        other => other.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(json: &str) -> Result<RouteSetting, String> {
        RouteSetting::from_value(&Value::parse(json).unwrap(), Match::All)
    }

    fn gated(categories: &[&str], match_mode: Match) -> RouteSetting {
        RouteSetting::Gated(Arc::new(RoutePolicy {
            categories: categories.iter().map(|c| c.to_string()).collect(),
            match_mode,
        }))
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
            RouteSetting::from_value(&Value::parse(r#"{"category":"A"}"#).unwrap(), Match::Any),
            Ok(gated(&["A"], Match::Any))
        );
        assert_eq!(setting("{}"), Ok(RouteSetting::Unconfigured));
        assert_eq!(
            setting(r#"{"exempt":false}"#),
            Ok(RouteSetting::Unconfigured)
        );
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
                "\"category\" must be a string, got null",
            ),
            (
                r#"{"categories":"Ads"}"#,
                "\"categories\" must be a list of strings",
            ),
            (
                r#"{"categories":["A",5]}"#,
                "\"categories[1]\" must be a string, got the number 5",
            ),
            (r#"{"categories":[]}"#, "\"categories\" is empty"),
            (r#"{"categories":["A","A"]}"#, "repeats the category \"A\""),
            (r#"{"category":""}"#, "empty category name"),
            (r#"{"category":"A","categories":["B"]}"#, "both"),
            (
                r#"{"category":"A","match":"most"}"#,
                "\"match\" must be \"all\" or \"any\"",
            ),
            (r#"{"match":"all"}"#, "no \"category\""),
            (r#"{"exempt":"yes"}"#, "\"exempt\" must be true or false"),
            (r#"{"exempt":true,"category":"A"}"#, "exempt"),
            (r#"["A"]"#, "must be a struct, got a list"),
        ];
        for (json, want) in cases {
            let err = setting(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
    }
}
