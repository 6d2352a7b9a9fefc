//! Route metadata as the host hands it over, any bytes: the Metadata protobuf (and the pairs
//! encoding of header maps) decode without panicking, and whatever decodes to a policy is a
//! valid one (1 to 64 unique, non-empty categories) or an error naming what is wrong.
#![no_main]

use consent_gate::host::RequestHeaders;
use consent_gate::policy::{Match, RouteSetting, MAX_CATEGORIES};
use consent_gate::wire::{decode_pairs, metadata_namespace};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(value)) = metadata_namespace(data, "consent_gate") {
        match RouteSetting::from_value(&value, Match::All) {
            Ok(RouteSetting::Gated(policy)) => {
                let c = &policy.categories;
                assert!(!c.is_empty() && c.len() <= MAX_CATEGORIES);
                assert!(c.iter().all(|n| !n.is_empty()));
                for (i, n) in c.iter().enumerate() {
                    assert!(!c[..i].contains(n));
                }
            }
            Ok(_) => {}
            Err(message) => assert!(!message.is_empty()),
        }
    }
    if let Some(pairs) = decode_pairs(data) {
        let _ = RequestHeaders::from_pairs(pairs);
    }
});
