//! The decision core's speed on the benchmark bodies (`benches/bodies.rs`), as one JSON line per
//! case: `make bench` runs it built for wasm32-wasip1 inside V8 (Node, `bench/v8_scan.mjs`) and
//! natively, so the report shows the same code on both hosts from one run.

#[path = "../benches/bodies.rs"]
mod bodies;

use consent_gate::config::Config;
use consent_gate::decision::{judge, Request};
use consent_gate::policy::{Match, RoutePolicy};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let config = Config::default();
    let policy = RoutePolicy::new(vec!["Advertising".into()], Match::All);
    let host = if cfg!(target_arch = "wasm32") {
        "v8"
    } else {
        "native"
    };
    for (name, path, body) in bodies::cases() {
        let request = Request {
            config: &config,
            policy: &policy,
            content_encoding: None,
            path,
            gpc: false,
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
        println!(
            "{{\"host\":\"{host}\",\"name\":\"{name}\",\"bytes\":{},\"ns\":{ns:.1},\"mb_s\":{:.1}}}",
            body.len(),
            body.len() as f64 / ns * 1e3
        );
    }
}
