// "Ask each time" with the official TypeScript SDK clients (issue 14 point 3): a call that
// waits for the person longer than the client's request timeout survives thanks to the
// broker's progress notifications when the client resets its timeout on progress
// (`resetTimeoutOnProgress`), and times out without that option. Both eras: the v1 SDK
// (2025-11-25, progress on the POST's event stream) and the v2 client in `auto` mode
// (2026-07-28, progress on the request's own response stream). The headless broker asks
// on its approval page (`[broker] ask_headless = "browser"`); `$BROWSER` is a script that
// records the page's address, and the test answers on the page as the person would.
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2, UnauthorizedError as UnauthorizedV2 } from '@modelcontextprotocol/client';
import { check, startBroker, connect, approveParams, Provider, BROKER } from './lib.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const sleep = ms => new Promise(r => setTimeout(r, ms));

/** The `n`th approval page the broker opened (from 0), waiting up to 10 s. */
async function openedPage(file, n) {
  for (let i = 0; i < 100; i++) {
    const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
    if (lines[n]) return lines[n];
    await sleep(100);
  }
  throw new Error(`no approval page #${n} was opened`);
}

/** Answers on the approval page as the browser would: read it, submit the form. */
async function answer(url, choice) {
  const html = await (await fetch(url)).text();
  const field = name => new RegExp(`name="${name}" value="([^"]+)"`).exec(html)?.[1];
  const origin = new URL(url).origin;
  const res = await fetch(`${origin}/tool-approval`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
    body: new URLSearchParams({ approval_id: field('approval_id'), csrf_token: field('csrf_token'), answer: choice })
  });
  return res.status;
}

/** The v2 client in `auto` mode, through the OAuth flow (consent approved on the page). */
async function connectV2(url) {
  const provider = new Provider();
  const transport = () => new TransportV2(new URL(url), { authProvider: provider });
  const client = () => new ClientV2({ name: 'ts-v2-ask', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
  const first = transport();
  try {
    const c = client();
    await c.connect(first);
    return c;
  } catch (e) {
    if (!(e instanceof UnauthorizedV2)) throw e;
  }
  // RFC 9207: the v2 client checks the issuer the authorization response names.
  const back = await approveParams(provider.pendingUrl.toString());
  await first.finishAuth(back.get('code'), back.get('iss'));
  const c = client();
  await c.connect(transport());
  return c;
}

/** A call to `client` with a 4 s timeout reset by progress, answered on the page after 10 s. */
async function waitThrough(client, opened, n, options) {
  const progress = [];
  const started = Date.now();
  const call = client.callTool(...options({ name: 'echo', arguments: { text: 'approved in the browser' } }, {
    timeout: 4000,
    resetTimeoutOnProgress: true,
    onprogress: p => progress.push(p)
  }));
  const url = await openedPage(opened, n);
  await sleep(Math.max(0, 10000 - (Date.now() - started)));
  const status = await answer(url, 'once');
  let result = null;
  try {
    result = await call;
  } catch (e) {
    result = { error: String(e) };
  }
  return { status, result, progress, waited: Date.now() - started };
}

export async function askWait() {
  const dir = mkdtempSync(join(tmpdir(), 'mcpb-ask-'));
  const opened = join(dir, 'opened');
  const browser = join(dir, 'browser');
  writeFileSync(browser, `#!/bin/sh\necho "$1" >> ${JSON.stringify(opened)}\n`);
  chmodSync(browser, 0o755);
  process.chdir(repo);
  const config = `[broker]\nask_headless = "browser"\n\n` + readFileSync(join(repo, 'tests/demo/demo.toml'), 'utf8');
  const b = await startBroker(config, { BROWSER: browser });
  const { client } = await connect(`${b.base}/mcp/demo`);
  const data = ['--data-dir', join(b.dir, 'data')];
  const grant = JSON.parse(spawnSync(BROKER, ['grants', 'list', '--json', ...data], { encoding: 'utf8' }).stdout)[0];
  const set = spawnSync(BROKER, ['grants', 'tools', String(grant.id), '--ask', 'echo', ...data], { encoding: 'utf8' });
  check(set.status === 0, 'ask: echo set to "ask each time" with the CLI', set.stderr);

  // A 4-second request timeout, an answer after 10 seconds: progress keeps it alive.
  const v1 = await waitThrough(client, opened, 0, (params, options) => [params, undefined, options]);
  check(v1.status === 200 && v1.result.content?.[0]?.text === 'approved in the browser' && v1.waited >= 10000,
    'ask: a 4 s-timeout TS SDK call with resetTimeoutOnProgress survives a 10 s approval wait', JSON.stringify(v1));
  check(v1.progress.length >= 3 && v1.progress.every(p => p.message === 'waiting for approval in mcp-broker'),
    'ask: the broker sent "waiting for approval" progress while it waited', JSON.stringify(v1.progress));

  // The same call without resetTimeoutOnProgress times out: the progress is what kept it alive.
  let timedOut = null;
  const t0 = Date.now();
  try {
    await client.callTool({ name: 'echo', arguments: { text: 'too slow' } }, undefined, { timeout: 4000, onprogress: () => {} });
  } catch (e) {
    timedOut = e;
  }
  check(timedOut?.code === -32001 && Date.now() - t0 < 8000, 'ask: without resetTimeoutOnProgress the same wait times out', String(timedOut));
  const second = await openedPage(opened, 1);
  const late = await answer(second, 'deny');
  check(late === 200 || late === 410, 'ask: the second question can still be answered, or was withdrawn', String(late));
  await client.close();

  // The TS SDK v2 client on 2026-07-28: the same wait, progress on the request's own stream.
  const modern = await connectV2(`${b.base}/mcp/demo`);
  check(modern.getNegotiatedProtocolVersion() === '2026-07-28', 'ask: the v2 client negotiated 2026-07-28', modern.getNegotiatedProtocolVersion());
  const grants = JSON.parse(spawnSync(BROKER, ['grants', 'list', '--json', ...data], { encoding: 'utf8' }).stdout);
  const newest = grants.reduce((a, g) => (g.id > a.id ? g : a));
  spawnSync(BROKER, ['grants', 'tools', String(newest.id), '--ask', 'echo', ...data], { encoding: 'utf8' });
  const v2 = await waitThrough(modern, opened, 2, (params, options) => [params, options]);
  check(v2.status === 200 && v2.result.content?.[0]?.text === 'approved in the browser' && v2.waited >= 10000 && v2.progress.length >= 3,
    'ask: a 4 s-timeout v2 (2026-07-28) call with resetTimeoutOnProgress survives a 10 s approval wait', JSON.stringify(v2));
  await modern.close();
}
