//! Times the decision core on the benchmark bodies (`bodies.rs`) and reports one JSON line per
//! case: shared by `examples/scan_speed.rs` (natively, and in Node's V8) and
//! `examples/scan_in_envoy.rs` (in Envoy's own V8).

use consent_gate::config::Config;
use consent_gate::decision::{judge, Request};
use consent_gate::policy::{Match, RoutePolicy};
use std::hint::black_box;
use std::time::Instant;

pub fn measure(host: &str, mut report: impl FnMut(String)) {
    let config = Config::default();
    let policy = RoutePolicy::new(vec!["Advertising".into()], Match::All);
    for (name, path, body) in crate::bodies::cases() {
        let request = Request {
            config: &config,
            policy: &policy,
            content_encoding: None,
            path,
            gpc: false,
            form: false,
            preflight: false,
        };
        let once = || black_box(judge(&request, black_box(body.as_bytes())));
        // Warm up (V8 tiers the module up), then size each round to about 20 ms.
        let started = Instant::now();
        let mut warm = 0u32;
        while started.elapsed().as_millis() < 300 {
            once();
            warm += 1;
        }
        let per_round = (warm / 15).max(1);
        let mut rounds: Vec<f64> = (0..15)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..per_round {
                    once();
                }
                t.elapsed().as_nanos() as f64 / f64::from(per_round)
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        let ns = rounds[rounds.len() / 2];
        report(format!(
            "{{\"host\":\"{host}\",\"name\":\"{name}\",\"bytes\":{},\"ns\":{ns:.1},\"mb_s\":{:.1}}}",
            body.len(),
            body.len() as f64 / ns * 1e3
        ));
    }
}
