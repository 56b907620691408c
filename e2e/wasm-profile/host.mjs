// A minimal proxy-wasm 0.2.1 host on Node's V8: runs one module's request path N times, for counting its
// instructions (profile.py count) or profiling it per wasm function (profile.py top). Not Envoy: see README.md.
// usage: node [V8 flags] host.mjs MODULE.wasm CONFIG.json N
import fs from 'node:fs';
import crypto from 'node:crypto';

const [modPath, cfgPath, nArg] = process.argv.slice(2);
const N = Number(nArg || 100000);
const config = fs.readFileSync(cfgPath);
let mem, ex;
const u8 = () => new Uint8Array(mem.buffer);
const dv = () => new DataView(mem.buffer);
const str = (p, l) => Buffer.from(u8().subarray(p, p + l)).toString('latin1');
function give(bytes, pp, sp) {
  const p = ex.proxy_on_memory_allocate(bytes.length);
  u8().set(bytes, p);
  dv().setUint32(pp, p, true);
  dv().setUint32(sp, bytes.length, true);
  return 0;
}
let headers = [];
let cache = null, cacheOf = null;
function serialize(pairs) {
  if (pairs === cacheOf) return cache;
  cacheOf = pairs; cache = serialize0(pairs); return cache;
}
function serialize0(pairs) {
  let size = 4 + pairs.length * 8;
  for (const [k, v] of pairs) size += k.length + v.length + 2;
  const b = Buffer.alloc(size);
  b.writeUInt32LE(pairs.length, 0);
  let o = 4;
  for (const [k, v] of pairs) { b.writeUInt32LE(k.length, o); b.writeUInt32LE(v.length, o + 4); o += 8; }
  for (const [k, v] of pairs) { b.write(k, o, 'latin1'); o += k.length + 1; b.write(v, o, 'latin1'); o += v.length + 1; }
  return b;
}
const calls = {};
const count = (n) => { calls[n] = (calls[n] || 0) + 1; };
let metricId = 0;
const env = {
  proxy_log: (lvl, p, l) => { if (lvl >= 2 && process.env.LOG) console.error('log', lvl, str(p, l)); return 0; },
  proxy_get_buffer_bytes: (t, s, m, pp, sp) => { count('get_buffer'); return t === 7 ? give(config, pp, sp) : give(Buffer.alloc(0), pp, sp); },
  proxy_get_header_map_pairs: (t, pp, sp) => { count('get_pairs'); return give(serialize(t === 0 ? headers : []), pp, sp); },
  proxy_get_header_map_value: (t, kp, kl, pp, sp) => {
    count('get_value'); const k = str(kp, kl); const h = headers.find(([n]) => n === k);
    return h ? give(Buffer.from(h[1], 'latin1'), pp, sp) : 1;
  },
  proxy_replace_header_map_value: (t, kp, kl, vp, vl) => {
    count('replace'); const k = str(kp, kl), v = str(vp, vl); const i = headers.findIndex(([n]) => n === k);
    headers = headers.slice(); if (i >= 0) headers[i] = [k, v]; else headers.push([k, v]); return 0;
  },
  proxy_add_header_map_value: (t, kp, kl, vp, vl) => { count('add'); headers = headers.concat([[str(kp, kl), str(vp, vl)]]); return 0; },
  proxy_remove_header_map_value: (t, kp, kl) => { count('remove'); const k = str(kp, kl); headers = headers.filter(([n]) => n !== k); return 0; },
  proxy_set_header_map_pairs: () => 0,
  proxy_get_property: (p, l, pp, sp) => { count('property'); return give(Buffer.from('127.0.0.1:40000'), pp, sp); },
  proxy_set_property: () => 0,
  proxy_get_current_time_nanoseconds: (pp) => { count('time'); dv().setBigUint64(pp, process.hrtime.bigint(), true); return 0; },
  proxy_set_tick_period_milliseconds: () => 0,
  proxy_define_metric: (t, p, l, ip) => { dv().setUint32(ip, ++metricId, true); return 0; },
  proxy_increment_metric: () => { count('metric'); return 0; },
  proxy_send_local_response: () => { count('local_response'); return 0; },
  proxy_set_effective_context: () => 0,
};
const stub = new Proxy(env, { get: (t, k) => t[k] || (() => 0) });
const wasi = {
  random_get: (p, l) => { u8().set(crypto.randomBytes(l), p); return 0; },
  environ_get: () => 0,
  environ_sizes_get: (a, b) => { dv().setUint32(a, 0, true); dv().setUint32(b, 0, true); return 0; },
  fd_write: () => 0,
  proc_exit: (c) => { throw new Error('exit ' + c); },
};
const wasiStub = new Proxy(wasi, { get: (t, k) => t[k] || (() => 0) });
const { instance } = await WebAssembly.instantiate(fs.readFileSync(modPath), { env: stub, wasi_snapshot_preview1: wasiStub });
ex = instance.exports; mem = ex.memory;
ex._initialize?.();
ex.proxy_on_context_create(1, 0);
ex.proxy_on_vm_start(1, 0);
if (!ex.proxy_on_configure(1, config.length)) throw new Error('configure failed');
const base = [
  [':authority', 'ml.example.com'], [':path', '/v1/models'], [':method', 'GET'], [':scheme', 'http'],
  ['authorization', 'Basic ' + Buffer.from('username:password').toString('base64')],
  ['x-forwarded-proto', 'http'], ['x-request-id', '8f1b2c5e-1b7a-4f5e-9a2b-3c4d5e6f7a8b'],
  ['x-envoy-internal', 'true'], ['x-forwarded-for', '127.0.0.1'],
];
function request(ctx) {
  headers = base;
  ex.proxy_on_context_create(ctx, 1);
  const action = ex.proxy_on_request_headers(ctx, headers.length, 1);
  if (action !== 0) throw new Error('paused: ' + action);
  ex.proxy_on_delete(ctx);
}
for (let i = 0; i < 2000; i++) request(2 + i); // warm-up, bcrypt once
for (const k of Object.keys(calls)) delete calls[k];
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) request(10000 + i);
const ns = Number(process.hrtime.bigint() - t0) / N;
console.log(`${ns.toFixed(0)} ns/request; host calls per request:`,
  Object.fromEntries(Object.entries(calls).map(([k, v]) => [k, v / N])));
