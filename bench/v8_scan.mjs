// Runs examples/scan_speed.rs, built for wasm32-wasip1, inside V8 (Node's WASI):
// node bench/v8_scan.mjs target/wasm32-wasip1/release/examples/scan_speed.wasm
import { readFile } from "node:fs/promises";
import { argv, exit } from "node:process";
import { WASI } from "node:wasi";

const wasi = new WASI({ version: "preview1", args: ["scan_speed"], env: {} });
const module = await WebAssembly.compile(await readFile(argv[2]));
// The library's proxy-wasm glue imports its host calls; this program never makes one.
const imports = wasi.getImportObject();
for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
  if (imports[from]?.[name] || kind !== "function") continue;
  imports[from] ??= {};
  imports[from][name] = () => {
    throw new Error(`host call ${from}.${name} in the scan benchmark`);
  };
}
const instance = await WebAssembly.instantiate(module, imports);
// The library also exports the proxy-wasm `_initialize`; run this program as a command.
const { memory, _start } = instance.exports;
exit(wasi.start({ exports: { memory, _start } }));
