//! Native throughput of the decision core (`cargo bench`, also run by `make bench`): a 1 KB and a
//! 32 KB event, and a ~500 KB batch with a third of its items denied, decide-only and
//! decide-plus-rewrite.

mod bodies;

use bodies::cases;
use consent_gate::config::Config;
use consent_gate::decision::{judge, Action, Request};
use consent_gate::policy::{Match, RoutePolicy};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let config = Config::default();
    let policy = RoutePolicy::new(vec!["Advertising".into()], Match::All);
    let request = |path| Request {
        config: &config,
        policy: &policy,
        content_encoding: None,
        path,
        gpc: false,
        form: false,
        preflight: false,
    };
    let cases = cases();
    let mut group = c.benchmark_group("judge");
    for (name, path, body) in &cases {
        let req = request(path);
        let expect_rewrite = name.ends_with("rewrite");
        let j = judge(&req, body.as_bytes());
        assert_eq!(
            matches!(j.action, Action::Rewrite(_)),
            expect_rewrite,
            "{name}: {:?}",
            j.action
        );
        assert!(expect_rewrite || j.action == Action::Forward, "{name}");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| judge(&req, black_box(body.as_bytes())))
        });
    }
    group.finish();

    // The reference the scanner is held to: serde_json reading the same bodies into a tree (a
    // reading that would still have to be checked for duplicate and look-alike keys).
    let mut group = c.benchmark_group("serde_json_value");
    for (name, _, body) in &cases {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body.as_bytes())))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
