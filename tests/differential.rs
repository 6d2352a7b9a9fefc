//! Differential, natively: for generated bodies built to be read two ways, whatever `judge`
//! forwards must be read alike by every reference reader (tests/support/readers.rs: last and
//! first key wins, case-insensitive keys with the kind taken from the endpoint, NUL-stopping keys,
//! a key converter's field names in any spelling, cJSON's lookup without ASCII case, the first key),
//! and every item any of them reads must be one the route allows. Bodies carry Segment's and
//! RudderStack's consent shapes and `integrations`; each seed also picks the plugin's
//! `consent_format`, the route's match mode and destination, and a `Sec-GPC: 1` signal. The end-to-end twin
//! (tests/e2e/test_differential.py) runs the same idea through Envoy with a real Go program.

#[path = "support/readers.rs"]
mod readers;

use consent_gate::config::Config;
use consent_gate::decision::{judge, Action, Request};
use consent_gate::policy::{Match, RoutePolicy};
use readers::{read, read_merged_deeply, reads_alike, Judge, Reader, Reading, Route, READERS};

/// SplitMix64: a small deterministic generator, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

struct Gen {
    rng: Rng,
    hostility: f64,
}

impl Gen {
    /// A key as JSON text, perhaps misspelled so that some reader takes it for another.
    fn key(&mut self, key: &str) -> String {
        if !self.rng.chance(self.hostility) {
            return format!("\"{key}\"");
        }
        match self.rng.below(11) {
            0 => format!("\"{}{}\"", key[..1].to_uppercase(), &key[1..]),
            // A Symbol to Ruby's Oj.
            10 => format!("\":{key}\""),
            1 => format!("\"{}\"", key.to_uppercase()),
            2 => format!("\"{}\"", key.replacen('s', "\u{17f}", 1)),
            3 => format!("\"{}\"", key.replacen('s', "\\u017f", 1)),
            4 => format!("\"{key}\\u0000\""),
            5 => format!("\"{}\"", key.replacen('i', "\u{131}", 1)),
            6 => format!("\"{}\"", key.replacen('i', "\\u0130", 1)),
            // What a key converter takes for the name: snake case, a separator anywhere.
            7 => {
                let snake: String = key
                    .chars()
                    .flat_map(|c| match c.is_ascii_uppercase() {
                        true => vec!['_', c.to_ascii_lowercase()],
                        false => vec![c],
                    })
                    .collect();
                format!("\"{snake}\"")
            }
            8 => {
                let at = self.rng.below(key.len() + 1);
                let separator = self.rng.pick(&["_", "\\u00a0", "\u{3000}", "\\u0000"]);
                format!("\"{}{separator}{}\"", &key[..at], &key[at..])
            }
            _ => {
                let i = self.rng.below(key.len());
                format!(
                    "\"{}\\u{:04x}{}\"",
                    &key[..i],
                    key.as_bytes()[i],
                    &key[i + 1..]
                )
            }
        }
    }

    fn object(&mut self, members: Vec<(&str, String)>) -> String {
        let mut out = Vec::new();
        for (k, v) in members {
            out.push(format!("{}:{v}", self.key(k)));
            if self.rng.chance(self.hostility / 2.0) {
                let again = self.value_for(k);
                out.push(format!("{}:{again}", self.key(k)));
            }
            if self.rng.chance(self.hostility / 4.0) {
                // Ruby's Oj sets the entry `k` by directive.
                let again = self.value_for(k);
                out.push(format!("\"^#{}\":[\"{k}\",{again}]", out.len()));
            }
            if self.rng.chance(self.hostility / 16.0) {
                // Ruby's `JSON.load` makes the object a String.
                out.push("\"json_class\":\"String\",\"raw\":[]".into());
            }
        }
        // Shuffle, so that repeats come in either order.
        for i in (1..out.len()).rev() {
            let j = self.rng.below(i + 1);
            out.swap(i, j);
        }
        format!("{{{}}}", out.join(","))
    }

    fn value_for(&mut self, key: &str) -> String {
        match key {
            "context" => self.context(),
            "consent" => self.consent(),
            "categoryPreferences" => self.preferences(),
            "consentManagement" => self.consent_management(),
            "deniedConsentIds" => self.ids(0.3),
            // SDKs list the consented IDs: the route's more often than the denied list does.
            "allowedConsentIds" => self.ids(0.7),
            "provider" => self
                .rng
                .pick(&["\"custom\"", "\"oneTrust\"", "\"ketch\"", "1"])
                .to_string(),
            "resolutionStrategy" => self
                .rng
                .pick(&["\"or\"", "\"and\"", "\"any\"", "\"or\\u0000\""])
                .to_string(),
            "integrations" => self.integrations(),
            "Mixpanel" | "All" => self
                .rng
                .pick(&["true", "false", "false", "{}", "\"false\"", "0", "null"])
                .to_string(),
            "type" => self.call(None),
            "event" => self.name(),
            _ => "\"x\"".into(),
        }
    }

    fn call(&mut self, endpoint_call: Option<&str>) -> String {
        match endpoint_call {
            Some(c) if self.rng.chance(0.7) => format!("\"{c}\""),
            _ => self
                .rng
                .pick(&[
                    "\"track\"",
                    "\"identify\"",
                    "\"page\"",
                    "\"Track\"",
                    "1",
                    "null",
                ])
                .to_string(),
        }
    }

    fn name(&mut self) -> String {
        self.rng
            .pick(&[
                "\"Buy\"",
                "\"Consent Change\"",
                "\"Segment Consent Preference Updated\"",
            ])
            .to_string()
    }

    fn preferences(&mut self) -> String {
        let mut members = Vec::new();
        for cat in ["Advertising", "Analytics", "advertising", "Functional"] {
            // `advertising` beside `Advertising` makes the event unreadable: not too often.
            let p = match cat {
                "Advertising" | "Analytics" => 0.9,
                "advertising" => 0.2,
                _ => 0.3,
            };
            if self.rng.chance(p) {
                let v = *self.rng.pick(&[
                    "true", "true", "true", "true", "true", "false", "\"true\"", "null",
                ]);
                members.push((cat, v.to_string()));
            }
        }
        self.object(members)
    }

    /// A list of IDs, each of the route's categories listed with chance `route`.
    fn ids(&mut self, route: f64) -> String {
        let mut ids = Vec::new();
        for id in [
            "\"Advertising\"",
            "\"Analytics\"",
            "\"advertising\"",
            "\"Functional\"",
            "\"Advertising\\u0000\"",
            "\"\"",
            "7",
        ] {
            if self.rng.chance(match id {
                "\"Advertising\"" | "\"Analytics\"" => route,
                _ if id.starts_with("\"A") => 0.3,
                _ => 0.1,
            }) {
                ids.push(id);
            }
        }
        if self.rng.chance(0.05) {
            return "\"Advertising\"".into();
        }
        format!("[{}]", ids.join(","))
    }

    fn consent_management(&mut self) -> String {
        let mut members = Vec::new();
        for (key, p) in [
            ("deniedConsentIds", 0.9),
            ("allowedConsentIds", 0.5),
            ("provider", 0.6),
            ("resolutionStrategy", 0.6),
        ] {
            if self.rng.chance(p) {
                members.push((key, self.value_for(key)));
            }
        }
        self.object(members)
    }

    fn integrations(&mut self) -> String {
        let mut members = Vec::new();
        for (key, p) in [
            ("Mixpanel", 0.5),
            ("All", 0.4),
            ("mixpanel", 0.1),
            ("Amplitude", 0.2),
        ] {
            if self.rng.chance(p) {
                members.push((key, self.value_for(key)));
            }
        }
        if self.rng.chance(0.03) {
            return "[]".into();
        }
        self.object(members)
    }

    fn consent(&mut self) -> String {
        if self.rng.chance(0.1) {
            return self.object(vec![("version", "2".into())]);
        }
        let prefs = self.preferences();
        self.object(vec![("categoryPreferences", prefs)])
    }

    fn context(&mut self) -> String {
        let mut members = vec![("library", "{\"name\":\"gen\"}".to_string())];
        // Segment's shape, RudderStack's, sometimes both, sometimes neither.
        let rudder = self.rng.chance(0.4);
        if (!rudder || self.rng.chance(0.1)) && self.rng.chance(0.9) {
            members.push(("consent", self.consent()));
        }
        if rudder {
            members.push(("consentManagement", self.consent_management()));
        }
        self.object(members)
    }

    fn event(&mut self, endpoint_call: Option<&str>) -> String {
        let mut members = vec![("userId", "\"u1\"".to_string())];
        if self.rng.chance(0.85) {
            members.push(("type", self.call(endpoint_call)));
        }
        members.push(("event", self.name()));
        if self.rng.chance(0.9) {
            members.push(("context", self.context()));
        }
        if self.rng.chance(0.4) {
            members.push(("integrations", self.integrations()));
        }
        self.object(members)
    }

    fn batch(&mut self) -> String {
        let n = 1 + self.rng.below(4);
        let items: Vec<String> = (0..n).map(|_| self.event(None)).collect();
        let mut members = vec![
            ("batch", format!("[{}]", items.join(","))),
            ("sentAt", "\"2026-11-29T00:00:00Z\"".to_string()),
        ];
        if self.rng.chance(0.4) {
            members.push(("context", self.context()));
        }
        if self.rng.chance(0.5) {
            members.push(("integrations", self.integrations()));
        }
        if self.rng.chance(self.hostility) {
            let k = *self.rng.pick(&["type", "userId", "event", "properties"]);
            members.push((k, "\"x\"".into()));
        }
        self.object(members)
    }
}

/// The endpoints, and the call each names.
const ENDPOINTS: [(&str, Option<&str>); 8] = [
    ("/v1/track", Some("track")),
    ("/v1/t", Some("track")),
    ("/v1/identify", Some("identify")),
    ("/v1/page", Some("page")),
    ("/v1/batch", None),
    ("/v1/b", None),
    ("/v1/import", None),
    ("/collect", None),
];

#[test]
fn whatever_is_forwarded_reads_alike_and_is_allowed() {
    let formats = ["segment", "rudderstack", "auto"];
    let (mut forwarded, mut refused) = (0, 0);
    for seed in 0..50_000u64 {
        let mut g = Gen {
            rng: Rng(seed),
            hostility: 0.0,
        };
        g.hostility = *g.rng.pick(&[0.0, 0.0, 0.05, 0.15, 0.4]);
        let format = *g.rng.pick(&formats);
        let missing_allowed = g.rng.chance(0.2);
        let config = Config::parse(&format!(
            r#"{{"consent_format":"{format}","on_missing_consent":"{}"}}"#,
            if missing_allowed { "allow" } else { "deny" }
        ))
        .unwrap();
        let match_any = g.rng.chance(0.3);
        let destination = g.rng.chance(0.5).then_some("Mixpanel");
        let gpc = g.rng.chance(0.2);
        let policy = RoutePolicy::new(
            vec!["Advertising".into(), "Analytics".into()],
            if match_any { Match::Any } else { Match::All },
        )
        .with_extras(
            "",
            destination.map(str::to_string),
            Some(vec!["Advertising".into()]),
        )
        .unwrap();
        let (path, call) = *g.rng.pick(&ENDPOINTS);
        let batch_endpoint = matches!(path, "/v1/batch" | "/v1/b" | "/v1/import");
        let as_batch = g.rng.chance(if batch_endpoint { 0.9 } else { 0.1 });
        let body = if as_batch { g.batch() } else { g.event(call) };
        let req = Request {
            config: &config,
            policy: &policy,
            content_encoding: None,
            path,
            gpc,
            form: false,
            preflight: false,
        };
        let out = match judge(&req, body.as_bytes()).action {
            Action::Forward => body.clone().into_bytes(),
            Action::Rewrite(b) => b,
            Action::Reply(_) => {
                refused += 1;
                continue;
            }
        };
        forwarded += 1;
        let route = Route {
            categories: &policy.categories,
            segment: format != "rudderstack",
            rudder: format != "segment",
            destination,
        };
        let judge = Judge {
            format,
            missing_allowed,
            match_any,
            withdrawn: vec![gpc, false],
            allow_listed: &config.always_allow_events,
            track_endpoint: matches!(
                path.rsplit('/').next().unwrap_or(""),
                "track" | "t" | "batch" | "b" | "import" | "collect" | ""
            ),
        };
        let readings: Vec<(Reader, Option<Reading>)> = READERS
            .iter()
            .map(|r| (*r, read(*r, path, &out, &route)))
            .collect();
        let first = &readings[0].1;
        assert!(
            first.is_some(),
            "seed {seed}: forwarded a body that is not JSON"
        );
        // A JavaScript receiver that merges the batch's context into each item deeply.
        for item in read_merged_deeply(&out, &route).unwrap_or_default() {
            assert!(
                judge.allows(&item),
                "seed {seed} ({format}, missing allowed {missing_allowed}): a deep merge reads a refused item {item:?} in {path} {body}"
            );
        }
        for (reader, reading) in &readings {
            assert!(
                reads_alike(*reader, reading, first),
                "seed {seed}: {reader:?} reads {path} {body} differently: {reading:?}, not {first:?}"
            );
            for item in &reading.as_ref().unwrap().items {
                assert!(
                    judge.allows(item),
                    "seed {seed} ({format}, {destination:?}, gpc {gpc}): {reader:?} reads a refused item {item:?} in {path} {body}"
                );
            }
        }
    }
    assert!(
        forwarded > 5_000 && refused > 5_000,
        "{forwarded} forwarded, {refused} refused"
    );
}
