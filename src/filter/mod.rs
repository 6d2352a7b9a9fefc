//! The Envoy glue: the only code that knows a host's ABI. Each adapter turns its host's callbacks
//! into [`crate::lifecycle::Lifecycle`] calls and implements [`crate::host::Host`].

#[cfg(feature = "dynamic-module")]
mod native;
#[cfg(target_arch = "wasm32")]
mod wasm;
