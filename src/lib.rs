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

/// The version of this build, as the module reports it when it is configured.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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
pub mod route_memo;
pub mod settings;
pub mod target;
pub mod wire;

mod filter;

/// Test builds only (`--features panic-trigger`): a body holding [`panic_trigger::TRIGGER`]
/// panics, as a bug would. The wasm module then aborts (Envoy's failure policy takes over); the
/// dynamic module catches it and fails closed. The end-to-end suite shows that neither lets a
/// request through unjudged. Never in a shipped build.
#[cfg(feature = "panic-trigger")]
pub mod panic_trigger {
    pub const TRIGGER: &[u8] = b"consent-gate-test-abort-now";

    #[allow(clippy::panic)] // the point of this test build
    pub fn check(body: &[u8]) {
        if body.windows(TRIGGER.len()).any(|w| w == TRIGGER) {
            panic!("consent-gate test build: trigger body");
        }
    }
}
