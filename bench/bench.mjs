// mcp-broker benchmark: prints figures for the product's targets.
//   - ready line after start (target <= 100 ms), fresh and existing data dir
//   - idle memory, headless (target <= 25 MiB RSS)
//   - the broker's own CPU per proxied tools/call (target <= 100 us), read from
//     /proc/PID/stat (user+system time of the broker process only, not the upstream),
//     sequential and with 8 concurrent clients; upstream sessions stay warm; and sequential
//     for a 2026-07-28 client (stateless requests over the broker's warm upstream session).
// Usage: BROKER=target/release/mcp-broker node bench/bench.mjs [calls]
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
const BROKER = resolve(process.env.BROKER || join(here, '../target/release/mcp-broker'));
const CALLS = Number(process.argv[2] || 5000);
const TICK = 100; // USER_HZ on Linux

function startBroker(dir, config) {
  writeFileSync(join(dir, 'config.toml'), config);
  const t0 = process.hrtime.bigint();
  const child = spawn(BROKER, ['serve', '--headless', '--config', join(dir, 'config.toml'), '--data-dir', join(dir, 'data'), '--port', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((res, rej) => {
    createInterface({ input: child.stdout }).once('line', line => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      res({ child, base: line.replace('listening on ', '').trim(), readyMs: ms });
    });
    child.on('error', rej);
  });
}
const stop = c => new Promise(r => { c.on('exit', r); c.kill('SIGTERM'); });
function cpuTicks(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime
}
function rssKiB(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}
const median = a => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function token(base, name) {
  const reg = await (await fetch(`${base}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: 'bench', redirect_uris: ['http://127.0.0.1:1/cb'], token_endpoint_auth_method: 'none' }) })).json();
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const q = new URLSearchParams({ response_type: 'code', client_id: reg.client_id, redirect_uri: 'http://127.0.0.1:1/cb', code_challenge: challenge, code_challenge_method: 'S256', resource: `${base}/mcp/${name}` });
  const html = await (await fetch(`${base}/authorize?${q}`)).text();
  const f = n => new RegExp(`name="${n}" value="([^"]+)"`).exec(html)[1];
  const res = await fetch(`${base}/authorize/consent`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base }, body: new URLSearchParams({ consent_id: f('consent_id'), csrf_token: f('csrf_token'), decision: 'approve' }) });
  if (res.status !== 302) throw new Error(`consent: ${res.status} ${await res.text()}`);
  if (res.status !== 302) throw new Error(`consent: ${res.status} ${await res.text()}`);
  const code = new URL(res.headers.get('location')).searchParams.get('code');
  const t = await (await fetch(`${base}/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: 'http://127.0.0.1:1/cb', client_id: reg.client_id, code_verifier: verifier }) })).json();
  return t.access_token;
}

async function session(url, tok) {
  const h = { authorization: `Bearer ${tok}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const init = await fetch(url, { method: 'POST', headers: h, body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } }) });
  await init.text();
  const sid = init.headers.get('mcp-session-id');
  const hs = { ...h, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  await (await fetch(url, { method: 'POST', headers: hs, body: '{"jsonrpc":"2.0","method":"notifications/initialized"}' })).text();
  let id = 1;
  return async () => {
    const r = await fetch(url, { method: 'POST', headers: hs, body: JSON.stringify({ jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x'.repeat(64) } } }) });
    const body = await r.text();
    if (!body.includes('xxxx')) throw new Error(`bad reply: ${r.status} ${body}`);
  };
}

// A 2026-07-28 client: no session, the envelope on every request (the broker keeps one warm
// upstream session per grant behind it).
function modern(url, tok) {
  const h = { authorization: `Bearer ${tok}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'echo' };
  const _meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
  let id = 1;
  return async () => {
    const r = await fetch(url, { method: 'POST', headers: h, body: JSON.stringify({ jsonrpc: '2.0', id: id++, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x'.repeat(64) }, _meta } }) });
    const body = await r.text();
    if (!body.includes('xxxx')) throw new Error(`bad reply: ${r.status} ${body}`);
  };
}

const config = `[servers.echo]\ncommand = "python3"\nargs = [${JSON.stringify(join(here, '../tests/demo/demo_server.py'))}]\n`;

// 1. Ready line.
const fresh = [], existing = [];
const keep = mkdtempSync(join(tmpdir(), 'mcpb-bench-'));
for (let i = 0; i < 10; i++) {
  const d = mkdtempSync(join(tmpdir(), 'mcpb-bench-'));
  const b = await startBroker(d, config);
  fresh.push(b.readyMs);
  await stop(b.child);
  const b2 = await startBroker(keep, config);
  existing.push(b2.readyMs);
  await stop(b2.child);
}
console.log(`ready line after start: median ${median(fresh).toFixed(1)} ms (new data dir), ${median(existing).toFixed(1)} ms (existing), max ${Math.max(...fresh, ...existing).toFixed(1)} ms  [target <= 100 ms]`);

// 2. Idle memory, and 3. CPU per call.
const b = await startBroker(mkdtempSync(join(tmpdir(), 'mcpb-bench-')), config);
await new Promise(r => setTimeout(r, 500));
console.log(`idle memory after start: ${(rssKiB(b.child.pid) / 1024).toFixed(1)} MiB RSS  [target <= 25 MiB]`);
const tok = await token(b.base, 'echo');
const url = `${b.base}/mcp/echo`;
const call = await session(url, tok);
for (let i = 0; i < 300; i++) await call(); // warm up
let c0 = cpuTicks(b.child.pid), t0 = process.hrtime.bigint();
for (let i = 0; i < CALLS; i++) await call();
let ticks = cpuTicks(b.child.pid) - c0, wall = Number(process.hrtime.bigint() - t0) / 1e3;
console.log(`sequential: ${CALLS} tools/call in ${(wall / 1e6).toFixed(2)} s, ${(wall / CALLS).toFixed(0)} us round trip, broker CPU ${((ticks / TICK) * 1e6 / CALLS).toFixed(1)} us per call  [target <= 100 us]`);

const clients = await Promise.all(Array.from({ length: 8 }, async () => session(url, await token(b.base, 'echo'))));
c0 = cpuTicks(b.child.pid); t0 = process.hrtime.bigint();
const per = Math.floor(CALLS / clients.length);
await Promise.all(clients.map(async c => { for (let i = 0; i < per; i++) await c(); }));
ticks = cpuTicks(b.child.pid) - c0; wall = Number(process.hrtime.bigint() - t0) / 1e3;
const n = per * clients.length;
console.log(`8 concurrent sessions: ${n} tools/call in ${(wall / 1e6).toFixed(2)} s (${(n / (wall / 1e6)).toFixed(0)} calls/s), broker CPU ${((ticks / TICK) * 1e6 / n).toFixed(1)} us per call`);
const m = modern(url, tok);
for (let i = 0; i < 300; i++) await m();
c0 = cpuTicks(b.child.pid); t0 = process.hrtime.bigint();
for (let i = 0; i < CALLS; i++) await m();
ticks = cpuTicks(b.child.pid) - c0; wall = Number(process.hrtime.bigint() - t0) / 1e3;
console.log(`sequential, 2026-07-28 client: ${CALLS} tools/call in ${(wall / 1e6).toFixed(2)} s, ${(wall / CALLS).toFixed(0)} us round trip, broker CPU ${((ticks / TICK) * 1e6 / CALLS).toFixed(1)} us per call  [no worse than the 2025-11-25 row]`);
await new Promise(r => setTimeout(r, 1000));
console.log(`memory after load, 9 warm sessions: ${(rssKiB(b.child.pid) / 1024).toFixed(1)} MiB RSS`);
await stop(b.child);
