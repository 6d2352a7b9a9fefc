//! Batch items, any bytes, inside a batch envelope (optionally gzip-compressed, so that the
//! rewrite is compressed again): the rewritten body keeps exactly the allowed items, byte for
//! byte and in order, and reads alike to every reference reader.
#![no_main]

use consent_gate::decision::Action;
use consent_gate::encoding::Encoding;
use consent_gate_fuzz::{judge_and_check, Setup};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, items @ ..] = data else { return };
    let mut plain = br#"{"sentAt":"x","batch":["#.to_vec();
    plain.extend_from_slice(items);
    plain.extend_from_slice(br#"],"context":{"library":{}}}"#);
    let (encoding, body) = if mode & 1 == 1 {
        (Some("gzip"), Encoding::Gzip.encode(plain.clone()))
    } else {
        (None, plain.clone())
    };
    // Bit 0 compresses; the others choose the configuration and route.
    let j = judge_and_check(&Setup::from_bits(mode >> 1), "/v1/batch", encoding, &body);
    if let Action::Rewrite(out) = &j.action {
        let out = match encoding {
            Some(_) => Encoding::Gzip.decode(out, usize::MAX).unwrap(),
            None => out.clone(),
        };
        // Outside the brackets nothing changes; inside, only whole items from the original.
        let prefix = br#"{"sentAt":"x","batch":["#;
        let suffix = br#"],"context":{"library":{}}}"#;
        assert!(out.starts_with(prefix) && out.ends_with(suffix));
        let kept: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let all: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        let (kept, all) = (kept["batch"].as_array().unwrap(), all["batch"].as_array().unwrap());
        assert_eq!(kept.len() as u32 + j.dropped, all.len() as u32);
        let mut rest = all.iter();
        for item in kept {
            assert!(rest.any(|a| a == item), "a kept item that was not in the batch, in order");
        }
    }
});
