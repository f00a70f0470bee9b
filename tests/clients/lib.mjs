// Shared pieces of the real-client tests: start the broker binary, approve consent over
// HTTP (as the person would by clicking Approve), and connect the official TS SDK client.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createServer } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

export const BROKER = process.env.BROKER;

/** A TCP port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise(res => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

/** A personal access token for `upstream` from the broker started by `startBroker`. */
export function personalToken(b, upstream, label) {
  const made = spawnSync(BROKER, ['tokens', 'create', '--upstream', upstream, '--label', label, '--config', `${b.dir}/config.toml`, '--data-dir', `${b.dir}/data`], { encoding: 'utf8' });
  return made.stdout.trim();
}

let passed = 0;
let failed = 0;
export function check(ok, what, detail = '') {
  if (ok) {
    passed++;
    console.log(`PASS ${what}`);
  } else {
    failed++;
    console.log(`FAIL ${what}${detail ? ' -- ' + detail : ''}`);
  }
}
export function summary() {
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0;
}

const children = [];
export function cleanup() {
  for (const c of children) {
    try { process.kill(-c.pid, 'SIGTERM'); } catch {}
  }
}
process.on('exit', cleanup);

/** Starts a process in its own group; resolves when `ready` matches a line of its output. */
export function start(cmd, args, { env = {}, ready, cwd } = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, detached: true, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} did not become ready`)), 30000);
    for (const s of [child.stdout, child.stderr]) {
      createInterface({ input: s }).on('line', line => {
        if (process.env.VERBOSE) console.error(`[${cmd}] ${line}`);
        const m = ready.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve({ child, match: m });
        }
      });
    }
    child.on('exit', code => reject(new Error(`${cmd} exited with ${code}`)));
  });
}

export async function startBroker(config, env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mcpb-client-'));
  writeFileSync(join(dir, 'config.toml'), config);
  const { child, match } = await start(BROKER, ['serve', '--headless', '--config', join(dir, 'config.toml'), '--data-dir', join(dir, 'data'), '--port', '0'], {
    env,
    ready: /^listening on (http:\/\/127\.0\.0\.1:\d+)$/
  });
  return { base: match[1], dir, child };
}

/** Plays the person: opens the consent page and clicks Approve (a form POST). The code. */
export async function approve(authorizationUrl) {
  return (await approveParams(authorizationUrl)).get('code');
}

/** As `approve`; every parameter of the redirect back (`code`, `state`, `iss`). */
export async function approveParams(authorizationUrl) {
  const page = await fetch(authorizationUrl);
  const html = await page.text();
  const field = name => new RegExp(`name="${name}" value="([^"]+)"`).exec(html)?.[1];
  if (!field('consent_id')) throw new Error(`no consent form at ${authorizationUrl}: ${page.status} ${html.slice(0, 200)}`);
  const origin = new URL(authorizationUrl).origin;
  const res = await fetch(`${origin}/authorize/consent`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
    body: new URLSearchParams({ consent_id: field('consent_id'), csrf_token: field('csrf_token'), decision: 'approve' })
  });
  const location = res.headers.get('location');
  return new URL(location).searchParams;
}

/** An OAuthClientProvider kept in memory, approving consent itself. */
export class Provider {
  constructor() {
    this.pendingUrl = null;
  }
  get redirectUrl() { return 'http://127.0.0.1:47999/callback'; }
  get clientMetadata() {
    return { client_name: 'mcp-broker client test', redirect_uris: [this.redirectUrl], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  clientInformation() { return this.client; }
  saveClientInformation(c) { this.client = c; }
  tokens() { return this.saved; }
  saveTokens(t) { this.saved = t; }
  redirectToAuthorization(url) { this.pendingUrl = url; }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

/** Connects the SDK client to url, running the OAuth flow on the first 401. */
export async function connect(url, provider = new Provider()) {
  const mk = () => new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  const client = new Client({ name: 'mcp-broker-client-test', version: '1.0.0' });
  let transport = mk();
  try {
    await client.connect(transport);
    return { client, provider };
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  const code = await approve(provider.pendingUrl.toString());
  await transport.finishAuth(code);
  const client2 = new Client({ name: 'mcp-broker-client-test', version: '1.0.0' });
  await client2.connect(mk());
  return { client: client2, provider };
}
