// Runs a wasm32-wasip1 test binary under Node's WASI (cargo's target runner for `make test-wasm`).
// A plugin crate links the proxy-wasm SDK, whose exports keep its `env.proxy_*` imports alive even in a
// test binary; the pure code under test never calls them, so each is bound to a function that fails loudly.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import process from "node:process";

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: "preview1", args: [file, ...args], env: process.env, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const imports = wasi.getImportObject();
for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
  if (from !== "env" || kind !== "function") continue;
  imports.env ??= {};
  imports.env[name] = () => {
    throw new Error(`host function env.${name} called outside a proxy`);
  };
}
const instance = await WebAssembly.instantiate(module, imports);
process.exitCode = wasi.start(instance);
