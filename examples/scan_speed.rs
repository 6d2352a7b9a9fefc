//! The decision core's speed on the benchmark bodies (`benches/bodies.rs`), as one JSON line per
//! case: `make bench` runs it natively and, built for wasm32-wasip1, inside Node's V8
//! (`bench/v8_scan.mjs`); `examples/scan_in_envoy.rs` does the same inside Envoy's V8.

#[path = "../benches/bodies.rs"]
mod bodies;
#[path = "../benches/scan.rs"]
mod scan;

fn main() {
    let host = if cfg!(target_arch = "wasm32") {
        "node-v8"
    } else {
        "native"
    };
    scan::measure(host, |line| println!("{line}"));
}
