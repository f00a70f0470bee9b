// The TypeScript rows of issue 11's client matrix (tests/modern/matrix_test.py starts the
// broker and its upstreams and runs this): the TypeScript SDK v2 client
// (@modelcontextprotocol/client) in `auto` mode and the TypeScript SDK 1.x client
// (@modelcontextprotocol/sdk, 2025-11-25), each against every upstream: the era it got,
// tools/list, tools/call, progress during a call, an elicitation in the middle of a call,
// and both in one call (`survey` on the upstream MATRIX_BOTH names for that kind).
// Prints one line per cell: CELL<TAB>client<TAB>upstream<TAB>op<TAB>PASS|FAIL<TAB>detail.
// MATRIX_BASE=http://127.0.0.1:PORT MATRIX_TOKENS='{"stdio":"..."}' MATRIX_TOOLS=... MATRIX_ASKS=... MATRIX_BOTH=... node matrix.mjs
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Client as Client1x } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as Transport1x } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const base = process.env.MATRIX_BASE;
const tokens = JSON.parse(process.env.MATRIX_TOKENS);
const tools = JSON.parse(process.env.MATRIX_TOOLS);
const asks = JSON.parse(process.env.MATRIX_ASKS);
const both = JSON.parse(process.env.MATRIX_BOTH);
let failed = 0;

function cell(client, upstream, op, ok, detail = '') {
  if (!ok) failed++;
  const d = ok ? '' : String(detail).replace(/\s+/g, ' ').slice(0, 300);
  console.log(['CELL', client, upstream, op, ok ? 'PASS' : 'FAIL', d].join('\t'));
}

const textOf = r => (r.content ?? []).map(c => c.text ?? '').join(' ');

/** The v2 client takes call options second; 1.x takes a result schema second. */
const clients = {
  'ts-v2-auto': {
    era: '2026-07-28',
    make() {
      const client = new ClientV2({ name: 'ts-v2-matrix', version: '1.0.0' }, { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: 'auto' } });
      return { client, onElicit: h => client.setRequestHandler('elicitation/create', h), Transport: TransportV2 };
    },
    version: (client) => client.getNegotiatedProtocolVersion(),
    call: (client, params, onprogress) => client.callTool(params, onprogress ? { onprogress } : undefined)
  },
  'ts-1x': {
    era: '2025-11-25',
    make() {
      const client = new Client1x({ name: 'ts-1x-matrix', version: '1.0.0' }, { capabilities: { elicitation: {} } });
      return { client, onElicit: h => client.setRequestHandler(ElicitRequestSchema, h), Transport: Transport1x };
    },
    version: (_client, transport) => transport.protocolVersion,
    call: (client, params, onprogress) => client.callTool(params, undefined, onprogress ? { onprogress } : undefined)
  }
};

/** A connected-to-be client of `upstream` that answers every elicitation with `who`. */
function open(kind, upstream, who) {
  const asked = [];
  const { client, onElicit, Transport } = kind.make();
  onElicit(async request => {
    asked.push(request.params);
    return { action: 'accept', content: { name: who } };
  });
  const transport = new Transport(new URL(`${base}/mcp/${upstream}`), {
    requestInit: { headers: { authorization: `Bearer ${tokens[upstream]}` } }
  });
  return { client, transport, asked };
}

async function row(name, upstream) {
  const kind = clients[name];
  const [echo, [slow, slowArgs], ask] = tools[upstream];
  const who = `${name} on ${upstream}`;
  const { client, transport, asked } = open(kind, upstream, who);
  let op = 'era';
  try {
    await client.connect(transport);
    const got = kind.version(client, transport);
    cell(name, upstream, op, got === kind.era, got);
    op = 'tools/list';
    const names = (await client.listTools()).tools.map(t => t.name);
    cell(name, upstream, op, [echo, slow, ask].every(n => names.includes(n)), JSON.stringify(names));
    op = 'tools/call';
    const r = await kind.call(client, { name: echo, arguments: { message: who } });
    cell(name, upstream, op, !r.isError && textOf(r).includes(who), JSON.stringify(r));
    op = 'progress';
    const progress = [];
    const s = await kind.call(client, { name: slow, arguments: slowArgs }, p => progress.push(p.progress));
    cell(name, upstream, op, !s.isError && progress.join(',') === '1,2,3', JSON.stringify({ progress, s }));
    op = 'elicitation';
    const e = await kind.call(client, { name: ask, arguments: {} });
    cell(name, upstream, op, asked.length === 1 && String(asked[0].message).includes(asks[upstream]) && !e.isError && textOf(e).includes(who), JSON.stringify({ asked, e }));
  } catch (e) {
    cell(name, upstream, op, false, e?.stack ?? String(e));
  } finally {
    await client.close().catch(() => {});
  }
  await bothInOneCall(name, upstream);
}

/** Progress, an elicitation, progress again, all in one call. */
async function bothInOneCall(name, upstream) {
  const kind = clients[name];
  const who = `${name} on ${both[upstream]}`;
  const { client, transport, asked } = open(kind, both[upstream], who);
  try {
    await client.connect(transport);
    const progress = [];
    // The v2 SDK reports its own progress while it fulfils an input_required round
    // ("Fulfilling input required by 'tools/call' (round 1)"): not the upstream's.
    const r = await kind.call(client, { name: 'survey', arguments: {} }, p => /^Fulfilling input required/.test(p.message ?? '') || progress.push(p.progress));
    cell(name, upstream, 'both-in-1-call', progress.join(',') === '1,2' && asked.length === 1 && String(asked[0].message).includes(asks.survey) && !r.isError && textOf(r).includes(`Thanks, ${who}`), JSON.stringify({ progress, asked, r }));
  } catch (e) {
    cell(name, upstream, 'both-in-1-call', false, e?.stack ?? String(e));
  } finally {
    await client.close().catch(() => {});
  }
}

for (const name of Object.keys(clients)) {
  for (const upstream of Object.keys(tools)) {
    await row(name, upstream);
  }
}
process.exit(failed ? 1 : 0);
