//! The plugin configuration, any text, and a request target matched against its `routes`
//! rules: parsing never panics, a configuration it accepts stays within its documented limits,
//! and rule matching never panics on any host or path. Input: config, NUL, authority, NUL, path.
#![no_main]

use consent_gate::config::{Config, RequestTarget, MAX_BATCH_ITEMS_LIMIT, MAX_BODY_BYTES_LIMIT};
use consent_gate::target::Endpoint;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\0');
    let (config, authority, path) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("api.example.com"),
        parts.next().unwrap_or("/v1/track"),
    );
    let _ = Endpoint::of_path(path);
    if let Ok(c) = Config::parse(config) {
        assert!((1..=MAX_BODY_BYTES_LIMIT).contains(&c.max_body_bytes));
        assert!((1..=MAX_BATCH_ITEMS_LIMIT).contains(&c.max_batch_items));
        assert!((400..=599).contains(&c.deny_status));
        let _ = c.rule_for(&RequestTarget { route_name: "r", authority, path });
        let _ = c.warnings();
    }
});
