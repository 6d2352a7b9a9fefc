//! The bodies the decision core is measured on, natively (`benches/decision.rs`) and inside V8
//! (`examples/scan_speed.rs`): the same text for both.

/// A realistic track event padded with products until it is about `size` bytes.
pub fn event(size: usize, consented: bool, id: usize) -> String {
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

pub fn batch(items: usize, item_size: usize) -> String {
    let items: Vec<String> = (0..items)
        .map(|i| event(item_size, i % 3 != 0, i))
        .collect();
    format!(
        r#"{{"batch":[{}],"sentAt":"2026-11-29T08:00:01.000Z","writeKey":"wk"}}"#,
        items.join(",")
    )
}

/// A batch of `items` small server-side track events (about 630 bytes each, the shape of the
/// end-to-end bench's batch in bench/run.py): no value in it is large enough to hand over to
/// block-wise reading, so it is read token by token throughout. Item i is denied when i % 3 == 1.
pub fn small_item_batch(items: usize) -> String {
    // Ids from a fixed sequence: the same text on every host and run.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut hex = |n: usize| -> String {
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                char::from(b"0123456789abcdef"[(state >> 60) as usize])
            })
            .collect()
    };
    let items: Vec<String> = (0..items)
        .map(|i| {
            let user = 1000 + i;
            let uuid = |h: String| {
                format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
            };
            format!(
                r#"{{"type":"track","event":"Product Viewed","userId":"user_{user:06}","anonymousId":"{}","messageId":"{}","timestamp":"2024-05-14T09:{:02}:07.{:03}Z","properties":{{"product_id":"{}","sku":"SN-{:04}","category":"Outdoor","name":"Merino Hoodie","variant":"Black / L","price":25.73,"quantity":3,"url":"https://shop.example.com/p/sn-{:04}"}},"context":{{"library":{{"name":"analytics-python","version":"2.3.2"}},"ip":"198.51.100.7","consent":{{"categoryPreferences":{{"Advertising":{},"Analytics":true,"Functional":true,"DataSharing":false}}}}}},"integrations":{{}}}}"#,
                uuid(hex(32)),
                uuid(hex(32)),
                user % 60,
                user % 1000,
                hex(24),
                user % 7919,
                user % 7919,
                i % 3 != 1
            )
        })
        .collect();
    format!(
        r#"{{"batch":[{}],"sentAt":"2024-05-14T09:21:08.000Z","writeKey":"wk_3Jr8Xq0bench"}}"#,
        items.join(",")
    )
}

/// The measured cases: name, request path, body.
pub fn cases() -> Vec<(&'static str, &'static str, String)> {
    let all_allowed_batch =
        batch(500, 1000).replace("\"Advertising\":false", "\"Advertising\":true");
    vec![
        ("event_1k", "/v1/track", event(1024, true, 1)),
        ("event_32k", "/v1/track", event(32 * 1024, true, 1)),
        ("batch_500k_decide_only", "/v1/batch", all_allowed_batch),
        ("batch_500k_rewrite", "/v1/batch", batch(500, 1000)),
        (
            "batch_100_small_items_rewrite",
            "/v1/batch",
            small_item_batch(100),
        ),
    ]
}
