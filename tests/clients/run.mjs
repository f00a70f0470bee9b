// Real-client tests, beyond the acceptance harness:
//  - the README's demo config answers tools/call from the official TS SDK;
//  - a remote upstream (`url = ...`) pointing at a real Streamable HTTP MCP server
//    (server-everything streamableHttp) works through the broker.
// BROKER=path/to/mcp-broker node run.mjs   -> ends with "N passed, N failed"
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { check, summary, startBroker, connect, start, cleanup } from './lib.mjs';

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

let ok = true;
for (const [name, t] of [['demo', demo], ['remote', remote]]) {
  try {
    await t();
  } catch (e) {
    check(false, `${name}: unexpected error`, e.stack || String(e));
  }
}
ok = summary();
cleanup();
process.exit(ok ? 0 : 1);
