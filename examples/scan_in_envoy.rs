//! The decision core timed inside Envoy's own V8 (its flags, its tiering), which Node's V8 only
//! approximates: a proxy-wasm module of its own that, started by Envoy as a singleton bootstrap
//! service (`bench/run.py`), runs `benches/scan.rs` and logs one `scan {json}` line per case.
//! Built for wasm32-wasip1 with `--features scan-bench`, which leaves the filter out of the
//! library (its `_initialize` would take this module's place).
#![cfg(target_arch = "wasm32")]

#[path = "../benches/bodies.rs"]
mod bodies;
#[path = "../benches/scan.rs"]
mod scan;

mod module {
    use proxy_wasm::traits::{Context, RootContext};
    use proxy_wasm::types::LogLevel;

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(ScanInEnvoy) });
    }}

    struct ScanInEnvoy;

    impl Context for ScanInEnvoy {}

    impl RootContext for ScanInEnvoy {
        fn on_vm_start(&mut self, _: usize) -> bool {
            super::scan::measure("envoy-v8", |line| {
                // Warn: shown at Envoy's default log level.
                let _ = proxy_wasm::hostcalls::log(LogLevel::Warn, &format!("scan {line}"));
            });
            true
        }
    }
}
