//! consent-gate: an Envoy HTTP filter (proxy-wasm) that enforces end-user privacy consent on
//! Segment-spec events before they reach analytics and marketing destinations.
//!
//! Everything that decides is plain Rust and runs natively in tests; only [`filter`] (compiled for
//! wasm32 only) talks to the host.

// A panic aborts the worker's wasm VM: filter code must not be able to panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod batch;
pub mod config;
pub mod decision;
pub mod encoding;
pub mod event;
pub mod host;
pub mod json;
pub mod lifecycle;
pub mod metrics;
pub mod policy;
pub mod reply;
pub mod target;
pub mod wire;

mod filter;

/// Test builds only (`--features abort-trigger`): a body holding [`abort_trigger::TRIGGER`]
/// aborts the module, as a crash would, so that the end-to-end suite can show that Envoy's
/// failure policy never lets a request through unjudged. Never in a shipped build.
#[cfg(feature = "abort-trigger")]
pub mod abort_trigger {
    pub const TRIGGER: &[u8] = b"consent-gate-test-abort-now";

    pub fn check(body: &[u8]) {
        if body.windows(TRIGGER.len()).any(|w| w == TRIGGER) {
            std::process::abort();
        }
    }
}
