// "Ask each time" with the official TypeScript SDK client (issue 14 point 3): a call that
// waits for the person longer than the client's request timeout survives thanks to the
// broker's progress notifications when the client resets its timeout on progress
// (`resetTimeoutOnProgress`), and times out without that option. The headless broker asks
// on its approval page (`[broker] ask_headless = "browser"`); `$BROWSER` is a script that
// records the page's address, and the test answers on the page as the person would.
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { check, startBroker, connect, BROKER } from './lib.mjs';

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
  const progress = [];
  const started = Date.now();
  const call = client.callTool({ name: 'echo', arguments: { text: 'approved in the browser' } }, undefined, {
    timeout: 4000,
    resetTimeoutOnProgress: true,
    onprogress: p => progress.push(p)
  });
  const url = await openedPage(opened, 0);
  await sleep(Math.max(0, 10000 - (Date.now() - started)));
  const status = await answer(url, 'once');
  let result = null;
  try {
    result = await call;
  } catch (e) {
    result = { error: String(e) };
  }
  const waited = Date.now() - started;
  check(status === 200 && result.content?.[0]?.text === 'approved in the browser' && waited >= 10000,
    'ask: a 4 s-timeout TS SDK call with resetTimeoutOnProgress survives a 10 s approval wait', JSON.stringify({ status, result, waited }));
  check(progress.length >= 3 && progress.every(p => p.message === 'waiting for approval in mcp-broker'),
    'ask: the broker sent "waiting for approval" progress while it waited', JSON.stringify(progress));

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
}
