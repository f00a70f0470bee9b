// Real-client tests, beyond the acceptance harness:
//  - the README's demo config answers tools/call from the official TS SDK;
//  - a remote upstream (`url = ...`) pointing at a real Streamable HTTP MCP server
//    (server-everything streamableHttp) works through the broker;
//  - a personal access token as a static `Authorization: Bearer` header: tools work on
//    its upstream, are refused on another, and are refused once `grants revoke` ran;
//  - a deleted registration: the SDK's refresh gets invalid_client, forgets the client
//    and registers again.
//  - "ask each time" on the headless approval page: progress keeps a call with a short
//    timeout and resetTimeoutOnProgress alive while it waits (ask_wait.mjs).
// BROKER=path/to/mcp-broker node run.mjs   -> ends with "N passed, N failed"
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { check, summary, startBroker, connect, start, cleanup, approve, Provider, BROKER } from './lib.mjs';
import { askWait } from './ask_wait.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

function freePort() {
  return new Promise(res => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

async function demo() {
  // The README's demo config, exactly as committed (its paths are relative to the repo).
  process.chdir(repo);
  const { readFileSync } = await import('node:fs');
  const b = await startBroker(readFileSync(join(repo, 'tests/demo/demo.toml'), 'utf8'));
  const { client } = await connect(`${b.base}/mcp/demo`);
  const tools = await client.listTools();
  check(tools.tools.some(t => t.name === 'echo'), 'demo: tools/list through the broker lists echo');
  const r = await client.callTool({ name: 'echo', arguments: { text: 'hello through the broker' } });
  check(r.content?.[0]?.text === 'hello through the broker', 'demo: tools/call echo answers', JSON.stringify(r));
  const progress = [];
  const c = await client.callTool({ name: 'count', arguments: { n: 3 } }, undefined, { onprogress: p => progress.push(p.progress) });
  check(c.content?.[0]?.text === 'counted to 3' && progress.join(',') === '1,2,3', 'demo: progress notifications reach the client', JSON.stringify({ c, progress }));
  const env = await client.callTool({ name: 'whoami', arguments: {} });
  const names = env.content?.[0]?.text ?? '';
  check(names.includes('DEMO_GREETING') && names.includes('PATH') && !names.includes('BROKER'), 'demo: the upstream got an explicit environment', names);
  await client.close();
}

async function remote() {
  const port = await freePort();
  const everything = join(here, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');
  await start(process.execPath, [everything, 'streamableHttp'], { env: { PORT: String(port) }, ready: /listening on port/ });
  const b = await startBroker(`[servers.everything-http]\nurl = "http://127.0.0.1:${port}/mcp"\n`);
  const { client } = await connect(`${b.base}/mcp/everything-http`);
  const tools = await client.listTools();
  check(tools.tools.some(t => t.name === 'echo'), 'remote upstream: tools/list relayed from server-everything over Streamable HTTP');
  const r = await client.callTool({ name: 'echo', arguments: { message: 'remote hello' } });
  check(JSON.stringify(r.content).includes('remote hello'), 'remote upstream: tools/call echo through the broker', JSON.stringify(r));
  const progress = [];
  const slow = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } }, undefined, { onprogress: p => progress.push(p.progress) });
  check(!slow.isError && progress.length === 3, 'remote upstream: progress notifications relayed', JSON.stringify({ slow, progress }));
  await client.close();
}

/** Runs the broker's CLI on broker `b`'s data dir; returns stdout, throws on failure. */
function cli(b, args) {
  const r = spawnSync(BROKER, [...args, '--data-dir', join(b.dir, 'data')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mcp-broker ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** The demo server twice, as two upstreams. */
function twoDemos() {
  const server = join(repo, 'tests/demo/demo_server.py');
  return ['demo', 'other'].map(n => `[servers.${n}]\ncommand = "python3"\nargs = [${JSON.stringify(server)}]\n`).join('');
}

async function bearerClient(url, token) {
  const client = new Client({ name: 'pat-script', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } }
  }));
  return client;
}

async function personalToken() {
  const b = await startBroker(twoDemos());
  const token = cli(b, ['tokens', 'create', '--config', join(b.dir, 'config.toml'), '--upstream', 'demo', '--label', 'ts sdk script']).trim();
  check(token.startsWith('mcpb_pat_'), 'personal token: created by the CLI next to the running broker');
  const client = await bearerClient(`${b.base}/mcp/demo`, token);
  const tools = await client.listTools();
  check(tools.tools.some(t => t.name === 'echo'), 'personal token: tools/list with a static Bearer header');
  const r = await client.callTool({ name: 'echo', arguments: { text: 'hello with a PAT' } });
  check(r.content?.[0]?.text === 'hello with a PAT', 'personal token: tools/call echo', JSON.stringify(r));
  let other = null;
  try {
    await bearerClient(`${b.base}/mcp/other`, token);
  } catch (e) {
    other = e;
  }
  check(other?.code === 401, 'personal token: refused on another upstream', String(other));
  const grant = JSON.parse(cli(b, ['grants', 'list', '--json'])).find(g => g.kind === 'personal_token');
  check(grant?.label === 'ts sdk script' && grant.upstream === 'demo', 'personal token: listed as a grant of its own', JSON.stringify(grant));
  cli(b, ['grants', 'revoke', String(grant.id)]);
  let revoked = null;
  try {
    await client.callTool({ name: 'echo', arguments: { text: 'after revoke' } });
  } catch (e) {
    revoked = e;
  }
  check(revoked?.code === 401, 'personal token: the open client is refused after `grants revoke`', String(revoked));
  let fresh = null;
  try {
    await bearerClient(`${b.base}/mcp/demo`, token);
  } catch (e) {
    fresh = e;
  }
  check(fresh?.code === 401, 'personal token: a new connection is refused after `grants revoke`', String(fresh));
  await client.close().catch(() => {});
}

/** A provider that forgets what the SDK tells it to (OAuthClientProvider.invalidateCredentials). */
class ForgetfulProvider extends Provider {
  invalidateCredentials(scope) {
    (this.invalidated ??= []).push(scope);
    if (scope === 'all' || scope === 'client') this.client = undefined;
    if (scope === 'all' || scope === 'tokens') this.saved = undefined;
  }
}

async function deletedRegistration() {
  const b = await startBroker(twoDemos());
  const url = `${b.base}/mcp/demo`;
  const provider = new ForgetfulProvider();
  const { client } = await connect(url, provider);
  const first = provider.client.client_id;
  cli(b, ['registrations', 'delete', first]);
  // The grant is gone: the next call gets 401, the SDK refreshes, the broker answers
  // invalid_client, and the SDK forgets the registration and registers again.
  let err = null;
  try {
    await client.callTool({ name: 'echo', arguments: { text: 'x' } });
  } catch (e) {
    err = e;
  }
  const second = provider.client?.client_id;
  check(err instanceof UnauthorizedError && provider.invalidated?.includes('all') && second && second !== first,
    'deleted registration: the TS SDK gets invalid_client on refresh and registers again', JSON.stringify({ err: String(err), invalidated: provider.invalidated, first, second }));
  const code = await approve(provider.pendingUrl.toString());
  await new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }).finishAuth(code);
  const c2 = new Client({ name: 'mcp-broker-client-test', version: '1.0.0' });
  await c2.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
  const r = await c2.callTool({ name: 'echo', arguments: { text: 'registered again' } });
  check(r.content?.[0]?.text === 'registered again', 'deleted registration: after consent the new registration works', JSON.stringify(r));
  await c2.close();
}

let ok = true;
for (const [name, t] of [['demo', demo], ['remote', remote], ['personal token', personalToken], ['deleted registration', deletedRegistration], ['ask', askWait]]) {
  try {
    await t();
  } catch (e) {
    check(false, `${name}: unexpected error`, e.stack || String(e));
  }
}
ok = summary();
cleanup();
process.exit(ok ? 0 : 1);
