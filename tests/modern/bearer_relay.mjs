// A loopback relay that adds `Authorization: Bearer TOKEN` to every request, so tools that
// cannot send a token (the conformance suite's `server` command) can reach /mcp/NAME.
// A request addressed to the relay itself gets the target's Host; any other Host (a
// DNS-rebinding probe) is passed on as sent, so the broker's own guard is what answers.
//   node bearer_relay.mjs TARGET_URL TOKEN   -> prints "relay http://127.0.0.1:PORT/mcp"
import http from 'node:http';

const [target, token] = process.argv.slice(2);
const to = new URL(target);
const server = http.createServer((req, res) => {
  const own = req.headers.host === `127.0.0.1:${server.address().port}` || req.headers.host === `localhost:${server.address().port}`;
  const headers = { ...req.headers, host: own ? to.host : req.headers.host, authorization: `Bearer ${token}` };
  const up = http.request({ host: to.hostname, port: to.port, path: to.pathname, method: req.method, headers }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  up.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
  // The client closing its stream is a cancellation: pass it on.
  res.on('close', () => up.destroy());
  req.pipe(up);
});
server.listen(0, '127.0.0.1', () => console.log(`relay http://127.0.0.1:${server.address().port}/mcp`));
