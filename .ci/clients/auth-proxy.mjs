// Loopback proxy for the conformance suite, which cannot send a bearer token.
//
// It logs in to Jarvis once with the operator password, then forwards every
// request to the upstream server with `Authorization: Bearer <token>` added.
// Everything else — method, path, body, Host and Origin headers — passes through
// unchanged, so Jarvis's own DNS-rebinding checks see exactly what the suite sent,
// and /mcp stays authenticated. Responses (SSE included) are streamed back as
// they arrive.
//
// Usage: JARVIS_PASSWORD=… node auth-proxy.mjs --upstream http://127.0.0.1:PORT [--port N]
// Prints one line `listening http://127.0.0.1:N` when ready. Uses only node's http module.
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    upstream: { type: 'string' },
    port: { type: 'string', default: '0' },
  },
});
if (!opts.upstream) {
  console.error('auth-proxy: --upstream http://127.0.0.1:PORT is required');
  process.exit(2);
}
const upstream = new URL(opts.upstream);
if (!['127.0.0.1', 'localhost', '[::1]'].includes(upstream.hostname)) {
  console.error(`auth-proxy: upstream ${upstream.hostname} is not a loopback address`);
  process.exit(2);
}
const password = process.env.JARVIS_PASSWORD;
if (!password) {
  console.error('auth-proxy: JARVIS_PASSWORD is not set; it is needed to log in to Jarvis');
  process.exit(2);
}

// login asks Jarvis for an operator token with the password (POST /api/auth/login).
function login() {
  const body = JSON.stringify({ password });
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: upstream.hostname.replace(/^\[|\]$/g, ''),
        port: upstream.port,
        method: 'POST',
        path: '/api/auth/login',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          if (res.statusCode !== 200) {
            reject(new Error(`login to ${upstream.origin} answered HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
            return;
          }
          try {
            const { token, expiresIn } = JSON.parse(text);
            if (typeof token !== 'string' || token === '') throw new Error('no token in the answer');
            resolve({ token, expiresAt: Date.now() + Number(expiresIn) * 1000 });
          } catch (err) {
            reject(new Error(`login answer from ${upstream.origin} is not {token, expiresIn}: ${err.message}`));
          }
        });
      },
    );
    req.on('error', (err) => reject(new Error(`cannot reach ${upstream.origin} to log in: ${err.message}`)));
    req.end(body);
  });
}

let session = await login();

const server = http.createServer(async (req, res) => {
  // Log in again shortly before the token expires (the demo's tokens live days; this is cheap safety).
  if (Date.now() > session.expiresAt - 60_000) {
    try {
      session = await login();
    } catch (err) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end(`auth-proxy: ${err.message}\n`);
      return;
    }
  }
  const headers = { ...req.headers, authorization: `Bearer ${session.token}` };
  const out = http.request(
    {
      host: upstream.hostname.replace(/^\[|\]$/g, ''),
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
    },
    (up) => {
      res.writeHead(up.statusCode, up.statusMessage, up.headers);
      res.flushHeaders();
      up.pipe(res);
      up.on('error', () => res.destroy());
    },
  );
  out.on('error', (err) => {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end(`auth-proxy: upstream failed: ${err.message}\n`);
    } else {
      res.destroy();
    }
  });
  // A client that hangs up (e.g. closing an SSE stream) ends the upstream request too.
  res.on('close', () => {
    if (!res.writableFinished) out.destroy();
  });
  req.pipe(out);
});

server.listen(Number(opts.port), '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
