//! One request body, any bytes: judged at an endpoint chosen by the first byte, under a plugin
//! configuration and route chosen by the second (consent format, destination, GPC signal, ...:
//! consent_gate_fuzz::Setup). Whatever is forwarded must read alike to every reference reader
//! and hold only allowed events (consent_gate_fuzz::check_forwarded).
#![no_main]

use consent_gate_fuzz::{judge_and_check, Setup, PATHS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [path, mode, body @ ..] = data else { return };
    let path = PATHS[usize::from(*path) % PATHS.len()];
    judge_and_check(&Setup::from_bits(*mode), path, None, body);
});
