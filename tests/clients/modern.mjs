// The TypeScript SDK v2 client (@modelcontextprotocol/client) in `auto` mode through the
// broker to server-everything over stdio and over Streamable HTTP (2025-11-25 upstreams):
// it probes server/discover, settles on 2026-07-28, lists and calls tools, gets progress,
// and answers an elicitation the upstream sends in the middle of a call (the broker's
// input_required). Authenticates with a personal access token.
// BROKER=path/to/mcp-broker node modern.mjs   -> ends with "N passed, N failed"
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { check, summary, startBroker, start, BROKER } from './lib.mjs';

const require = createRequire(import.meta.url);
const everything = require.resolve('@modelcontextprotocol/server-everything/dist/index.js');

function freePort() {
  return new Promise(res => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

async function run() {
  const port = await freePort();
  await start(process.execPath, [everything, 'streamableHttp'], { env: { PORT: String(port) }, ready: /listening on port/ });
  const b = await startBroker(
    `[servers.every]\ncommand = ${JSON.stringify(process.execPath)}\nargs = [${JSON.stringify(everything)}, "stdio"]\n\n` +
      `[servers.remote]\nurl = "http://127.0.0.1:${port}/mcp"\n`
  );
  for (const upstream of ['every', 'remote']) {
    const made = spawnSync(BROKER, ['tokens', 'create', '--upstream', upstream, '--label', 'ts-v2', '--config', `${b.dir}/config.toml`, '--data-dir', `${b.dir}/data`], { encoding: 'utf8' });
    const token = made.stdout.trim();
    const transport = new StreamableHTTPClientTransport(new URL(`${b.base}/mcp/${upstream}`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } }
    });
    const client = new Client({ name: 'ts-v2-modern', version: '1.0.0' }, { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: 'auto' } });
    const asked = [];
    client.setRequestHandler('elicitation/create', async request => {
      asked.push(request.params);
      return { action: 'accept', content: { name: 'Grace Hopper', check: true } };
    });
    await client.connect(transport);
    const tag = `TS v2 auto, ${upstream}`;
    check(client.getNegotiatedProtocolVersion() === '2026-07-28', `${tag}: negotiated 2026-07-28 with the broker`, client.getNegotiatedProtocolVersion());
    const tools = await client.listTools();
    check(tools.tools.some(t => t.name === 'echo'), `${tag}: tools/list lists the upstream's tools`);
    const r = await client.callTool({ name: 'echo', arguments: { message: `v2 ${upstream}` } });
    check(JSON.stringify(r.content).includes(`v2 ${upstream}`), `${tag}: tools/call echo`, JSON.stringify(r));
    const progress = [];
    const slow = await client.callTool(
      { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } },
      { onprogress: p => progress.push(p.progress) }
    );
    check(!slow.isError && progress.length === 3, `${tag}: progress on the call's own stream`, JSON.stringify({ progress }));
    const e = await client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
    check(asked.length === 1 && JSON.stringify(e.content).includes('Grace Hopper'), `${tag}: an elicitation mid-call answered through input_required`, JSON.stringify({ asked: asked.length, e }).slice(0, 400));
    await client.close();
  }
}

try {
  await run();
} catch (e) {
  check(false, 'TS v2 client run', e?.stack ?? String(e));
}
process.exit(summary() ? 0 : 1);
