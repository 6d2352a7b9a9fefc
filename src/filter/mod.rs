//! The Envoy glue: the only code that knows a host's ABI. Each adapter turns its host's callbacks
//! into [`crate::lifecycle::Lifecycle`] calls and implements [`crate::host::Host`].

#[cfg(feature = "dynamic-module")]
mod native;
// Left out of `scan-bench` builds, whose only module is examples/scan_in_envoy.rs.
#[cfg(all(target_arch = "wasm32", not(feature = "scan-bench")))]
mod wasm;
