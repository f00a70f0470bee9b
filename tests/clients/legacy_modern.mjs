// The TypeScript SDK 1.x client (@modelcontextprotocol/sdk, 2025-11-25 only) through the
// broker to a remote upstream that speaks only 2026-07-28 (tests/modern/modern_upstream.py
// --modern-only): the broker holds the 2025-11-25 session and speaks 2026-07-28 upstream.
// Lists and calls tools, gets progress, and answers an elicitation the upstream asks for in
// the middle of a call (its input_required becomes an elicitation/create on the client's
// stream). Authenticates with a personal access token.
// The same against that server over stdio (probed on a throwaway child, then spoken to in
// 2026-07-28 only).
// BROKER=path/to/mcp-broker PY=python-with-mcp-2.3 node legacy_modern.mjs
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { check, summary, startBroker, start, freePort, personalToken } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const upstreamScript = resolve(here, '..', 'modern', 'modern_upstream.py');

async function run() {
  const port = await freePort();
  await start(process.env.PY, [upstreamScript, String(port), '--modern-only'], { ready: /Uvicorn running|Application startup complete/ });
  const b = await startBroker(
    `[servers.modern]\nurl = "http://127.0.0.1:${port}/mcp"\n\n` +
      `[servers.stdio]\ncommand = ${JSON.stringify(process.env.PY)}\nargs = [${JSON.stringify(upstreamScript)}, "stdio"]\n`
  );
  for (const [upstream, what] of [['modern', '2026-07-28-only remote upstream'], ['stdio', '2026-07-28 stdio upstream']]) {
    await session(b, upstream, `TS SDK 1.x -> ${what}`);
  }
}

async function session(b, upstream, tag) {
  const token = personalToken(b, upstream, 'ts-1x');
  const transport = new StreamableHTTPClientTransport(new URL(`${b.base}/mcp/${upstream}`), {
    requestInit: { headers: { authorization: `Bearer ${token}` } }
  });
  const client = new Client({ name: 'ts-1x-legacy', version: '1.0.0' }, { capabilities: { elicitation: {} } });
  const asked = [];
  client.setRequestHandler(ElicitRequestSchema, async request => {
    asked.push(request.params);
    return { action: 'accept', content: { name: 'Hedy' } };
  });
  await client.connect(transport);
  check(client.getServerVersion()?.name === 'modern-upstream', `${tag}: initialize answered from the upstream's server/discover`, JSON.stringify(client.getServerVersion()));
  const tools = await client.listTools();
  check(['echo', 'slow', 'ask'].every(n => tools.tools.some(t => t.name === n)), `${tag}: tools/list`, JSON.stringify(tools.tools.map(t => t.name)));
  const r = await client.callTool({ name: 'echo', arguments: { message: 'from 2025' } });
  check(JSON.stringify(r.content).includes('Echo: from 2025'), `${tag}: tools/call echo`, JSON.stringify(r));
  const progress = [];
  const slow = await client.callTool({ name: 'slow', arguments: { steps: 3 } }, undefined, { onprogress: p => progress.push(p.progress) });
  check(!slow.isError && progress.join(',') === '1,2,3', `${tag}: progress relayed`, JSON.stringify({ progress, slow }));
  const e = await client.callTool({ name: 'ask', arguments: {} });
  check(asked.length === 1 && JSON.stringify(e.content).includes('Hello, Hedy'), `${tag}: an elicitation mid-call (input_required) answered by the client`, JSON.stringify({ asked, e }).slice(0, 400));
  await client.close();
}

try {
  await run();
} catch (e) {
  check(false, 'TS 1.x client against a modern upstream', e?.stack ?? String(e));
}
process.exit(summary() ? 0 : 1);
