//! Native throughput of the decision core (`cargo bench`, also run by `make bench`): a 1 KB and a
//! 32 KB event, and a ~500 KB batch with a third of its items denied, decide-only and
//! decide-plus-rewrite.

use consent_gate::config::Config;
use consent_gate::decision::{judge, Action, Request};
use consent_gate::policy::{Match, RoutePolicy};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

/// A realistic track event padded with products until it is about `size` bytes.
fn event(size: usize, consented: bool, id: usize) -> String {
    let mut products = Vec::new();
    let mut n = 0;
    loop {
        let body = format!(
            r#"{{"type":"track","event":"Order Completed","messageId":"msg-{id:08}","userId":"user-{id}","anonymousId":"23adfd82-aa0f-45a7-a756-24f2a7a4c895","timestamp":"2026-11-29T08:00:00.000Z","properties":{{"order_id":"50314b8e9bcf000000000000","total":27.5,"revenue":25.0,"currency":"USD","products":[{}]}},"context":{{"library":{{"name":"analytics.js","version":"2.11.1"}},"page":{{"path":"/checkout","url":"https://shop.example.com/checkout?step=3","title":"Checkout \u2014 Example"}},"userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","ip":"203.0.113.7","locale":"en-US","consent":{{"categoryPreferences":{{"Advertising":{consented},"Analytics":true,"Functional":true,"DataSharing":false}}}}}}}}"#,
            products.join(",")
        );
        if body.len() >= size {
            return body;
        }
        products.push(format!(
            r#"{{"product_id":"507f1f77bcf86cd7994390{n:02}","sku":"45790-{n}","name":"Monopoly: 3rd Edition \"deluxe\"","price":19.99,"quantity":1,"category":"Games","url":"https://shop.example.com/p/{n}","image_url":"https://cdn.example.com/p/{n}.jpg"}}"#
        ));
        n += 1;
    }
}

fn batch(items: usize, item_size: usize) -> String {
    let items: Vec<String> = (0..items)
        .map(|i| event(item_size, i % 3 != 0, i))
        .collect();
    format!(
        r#"{{"batch":[{}],"sentAt":"2026-11-29T08:00:01.000Z","writeKey":"wk"}}"#,
        items.join(",")
    )
}

fn bench(c: &mut Criterion) {
    let config = Config::default();
    let policy = RoutePolicy::new(vec!["Advertising".into()], Match::All);
    let request = |path| Request {
        config: &config,
        policy: &policy,
        content_encoding: None,
        path,
        gpc: false,
    };
    let all_allowed_batch =
        batch(500, 1000).replace("\"Advertising\":false", "\"Advertising\":true");
    let cases = [
        ("event_1k", "/v1/track", event(1024, true, 1)),
        ("event_32k", "/v1/track", event(32 * 1024, true, 1)),
        ("batch_500k_decide_only", "/v1/batch", all_allowed_batch),
        ("batch_500k_rewrite", "/v1/batch", batch(500, 1000)),
    ];
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
