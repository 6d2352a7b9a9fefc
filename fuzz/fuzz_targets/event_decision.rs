//! One request body, any bytes: judged at an endpoint chosen by the first byte, under a policy
//! and a missing-consent rule chosen by the second. Whatever is forwarded must read alike to
//! every reference reader and hold only allowed events (consent_gate_fuzz::check_forwarded).
#![no_main]

use consent_gate::config::Config;
use consent_gate_fuzz::{judge_and_check, policy, PATHS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [path, mode, body @ ..] = data else { return };
    let path = PATHS[usize::from(*path) % PATHS.len()];
    let config = if mode & 1 == 0 {
        Config::default()
    } else {
        Config::parse(r#"{"on_missing_consent":"allow","batch_mode":"filter"}"#).unwrap()
    };
    judge_and_check(&config, &policy(mode & 2 != 0), path, None, body);
});
