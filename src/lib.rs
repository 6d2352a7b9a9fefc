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

#[cfg(target_arch = "wasm32")]
mod filter;
