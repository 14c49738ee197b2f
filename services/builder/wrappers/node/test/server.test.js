'use strict';
// Tests for the nuage Node.js runtime wrapper: real HTTP requests against createServer()
// listening on 127.0.0.1, with handlers written to temporary directories.
// Run from the repository root: node --test services/builder/wrappers/node/test/

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const { createServer } = require('../server.js');

const temporaryDirs = [];
const servers = [];

test.after(async () => {
  await Promise.all(servers.map((server) => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(resolve);
  })));
  for (const dir of temporaryDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes `files` ({relative path: source}) to a fresh temporary directory. */
function codeDir(files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nuage-node-wrapper-'));
  temporaryDirs.push(dir);
  for (const [name, source] of Object.entries(files)) {
    const file = path.join(dir, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, source);
  }
  return dir;
}

/** Starts a wrapper for `files` and returns its base URL. */
async function serve(files, options = {}) {
  const server = createServer({ codeDir: codeDir(files), env: {}, ...options });
  servers.push(server);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${server.address().port}`;
}

/** Serves a single `handler.js` with `source`. */
function serveHandler(source, options) {
  return serve({ 'handler.js': source }, options);
}

/** A raw request with node:http: {status, headers, rawHeaders, body (Buffer)}. */
function request(url, { method = 'GET', headers = {}, body, chunks } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const parts = [];
      res.on('data', (part) => parts.push(part));
      res.on('end', () => resolve({
        status: res.statusCode,
        headers: res.headers,
        rawHeaders: res.rawHeaders,
        body: Buffer.concat(parts),
      }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (chunks) {
      for (const chunk of chunks) req.write(chunk);
      req.end();
    } else {
      req.end(body);
    }
  });
}

async function echoEvent(url, init) {
  const response = await fetch(url, init);
  assert.equal(response.status, 200);
  return response.json();
}

const ECHO = `exports.handle = (event, context) => ({ event, context, lower: event.headers['x-custom'] });`;

test('a plain string return is the body, with status 200 and CORS defaults', async () => {
  const url = await serveHandler(`exports.handle = () => 'Hello from nuage';`);
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.equal(await response.text(), 'Hello from nuage');
  assert.equal(response.headers.get('access-control-allow-origin'), '*');
  assert.equal(response.headers.get('access-control-allow-headers'), 'Content-Type');
  assert.match(response.headers.get('content-type'), /^text\/plain/);
});

test('an HTML string is sniffed as text/html', async () => {
  const url = await serveHandler(`exports.handle = () => '<h1>Hi</h1>';`);
  const response = await fetch(url);
  assert.match(response.headers.get('content-type'), /^text\/html/);
  assert.equal(await response.text(), '<h1>Hi</h1>');
});

test('numbers and booleans are stringified', async () => {
  const url = await serve({ 'number.js': `exports.handle = () => 42;` }, { handler: 'number.handle' });
  assert.equal(await (await fetch(url)).text(), '42');
  const url2 = await serve({ 'bool.js': `exports.handle = () => false;` }, { handler: 'bool.handle' });
  assert.equal(await (await fetch(url2)).text(), 'false');
});

test('an object without statusCode is returned as JSON with status 200', async () => {
  const url = await serveHandler(`exports.handle = () => ({ message: 'hi', list: [1, 2], body: 'kept' });`);
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'application/json');
  assert.deepEqual(await response.json(), { message: 'hi', list: [1, 2], body: 'kept' });
});

test('an array return is JSON too', async () => {
  const url = await serveHandler(`exports.handle = () => [1, 'two'];`);
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), [1, 'two']);
});

test('a response record sets status, headers (string and array values) and body', async () => {
  const url = await serveHandler(`
    exports.handle = () => ({
      statusCode: 201,
      headers: {
        'Content-Type': ['text/csv'],
        'X-Single': 'one',
        'X-Multi': ['a', 'b'],
        'Set-Cookie': ['a=1', 'b=2'],
        'X-Number': 7,
        'Access-Control-Allow-Origin': 'https://example.com',
      },
      body: 'a,b\\n1,2\\n',
      unknownKey: 'dropped',
    });`);
  const response = await request(url);
  assert.equal(response.status, 201);
  assert.equal(response.body.toString(), 'a,b\n1,2\n');
  assert.equal(response.headers['content-type'], 'text/csv');
  assert.equal(response.headers['x-single'], 'one');
  assert.equal(response.headers['x-number'], '7');
  assert.deepEqual(response.headers['set-cookie'], ['a=1', 'b=2']);
  // Two separate header lines for X-Multi.
  const multi = [];
  for (let i = 0; i < response.rawHeaders.length; i += 2) {
    if (response.rawHeaders[i].toLowerCase() === 'x-multi') multi.push(response.rawHeaders[i + 1]);
  }
  assert.deepEqual(multi, ['a', 'b']);
  // Handler headers override the CORS defaults; the other default stays.
  assert.equal(response.headers['access-control-allow-origin'], 'https://example.com');
  assert.equal(response.headers['access-control-allow-headers'], 'Content-Type');
});

test('a record with an object body writes it as JSON', async () => {
  const url = await serveHandler(`
    exports.handle = () => ({ statusCode: 404, body: { error: 'not found' } });`);
  const response = await fetch(url);
  assert.equal(response.status, 404);
  assert.equal(response.headers.get('content-type'), 'application/json');
  assert.deepEqual(await response.json(), { error: 'not found' });
});

test('a record with an already stringified JSON body is written unchanged', async () => {
  const url = await serveHandler(`
    exports.handle = () => ({ statusCode: 200, headers: { 'Content-Type': 'application/json' },
                              body: JSON.stringify({ ok: true }) });`);
  const response = await fetch(url);
  assert.equal(await response.text(), '{"ok":true}');
});

test('isBase64Encoded in a record sends the decoded bytes', async () => {
  const bytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01, 0xfe, 0xff]);
  const url = await serveHandler(`
    exports.handle = () => ({
      statusCode: 200,
      headers: { 'Content-Type': 'image/png' },
      body: '${bytes.toString('base64')}',
      isBase64Encoded: true,
    });`);
  const response = await request(url);
  assert.equal(response.status, 200);
  assert.equal(response.headers['content-type'], 'image/png');
  assert.deepEqual(response.body, bytes);
});

test('a promise-returning (async) handler', async () => {
  const url = await serveHandler(`
    exports.handle = async (event) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return { statusCode: 202, body: 'later ' + event.httpMethod };
    };`);
  const response = await fetch(url, { method: 'PUT', body: 'x' });
  assert.equal(response.status, 202);
  assert.equal(await response.text(), 'later PUT');
});

test('a callback handler', async () => {
  const url = await serveHandler(`
    exports.handle = function (event, context, callback) {
      setTimeout(() => callback(null, { statusCode: 200, body: 'from callback' }), 20);
    };`);
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.equal(await response.text(), 'from callback');
});

test('a callback error is a 500', async () => {
  const url = await serveHandler(`
    exports.handle = (event, context, callback) => { callback(new Error('callback broke')); };`);
  const response = await fetch(url);
  assert.equal(response.status, 500);
  assert.equal(await response.text(), 'function invocation failed: callback broke');
});

test('a thrown error is a 500 naming the message', async () => {
  const url = await serveHandler(`exports.handle = () => { throw new Error('boom'); };`);
  const response = await fetch(url);
  assert.equal(response.status, 500);
  assert.equal(await response.text(), 'function invocation failed: boom');
  assert.equal(response.headers.get('access-control-allow-origin'), '*');
  // The server keeps serving.
  assert.equal((await fetch(url)).status, 500);
});

test('a rejected promise is a 500', async () => {
  const url = await serveHandler(`exports.handle = async () => { throw new TypeError('async boom'); };`);
  const response = await fetch(url);
  assert.equal(response.status, 500);
  assert.equal(await response.text(), 'function invocation failed: async boom');
});

test('an invalid statusCode is a 500', async () => {
  const url = await serveHandler(`exports.handle = () => ({ statusCode: 'nope', body: 'x' });`);
  const response = await fetch(url);
  assert.equal(response.status, 500);
  assert.match(await response.text(), /invalid statusCode/);
});

test('an invalid header value is a 500', async () => {
  const url = await serveHandler(`exports.handle = () => ({ statusCode: 200, headers: { 'X-Bad': 'a\\nb' }, body: 'x' });`);
  const response = await fetch(url);
  assert.equal(response.status, 500);
  assert.match(await response.text(), /invalid response/);
  assert.equal(response.headers.get('x-bad'), null);
  assert.equal(response.headers.get('access-control-allow-origin'), '*');
});

test('a 204 record has no body', async () => {
  const url = await serveHandler(`exports.handle = () => ({ statusCode: 204, body: 'ignored' });`);
  const response = await request(url);
  assert.equal(response.status, 204);
  assert.equal(response.body.length, 0);
  assert.equal(response.headers['access-control-allow-origin'], '*');
});

test('event fields: path, method, query, headers, body, isBase64Encoded', async () => {
  const url = await serveHandler(ECHO);
  const { event, lower } = await echoEvent(`${url}/some/path?a=1&b=two&a=3`, {
    method: 'POST',
    headers: { 'X-Custom': 'value', 'Content-Type': 'text/plain' },
    body: 'hello world!',
  });
  assert.equal(event.resource, '');
  assert.equal(event.path, '/some/path');
  assert.equal(event.httpMethod, 'POST');
  assert.deepEqual(event.queryStringParameters, { a: '3', b: 'two' });
  assert.equal(event.headers['X-Custom'], 'value');
  assert.equal(event.headers['Content-Type'], 'text/plain');
  assert.equal(lower, 'value', 'lower-case header lookups work too');
  assert.equal(event.multiValueHeaders, null);
  assert.equal(event.multiValueQueryStringParameters, null);
  assert.equal(event.pathParameters, null);
  assert.deepEqual(event.stageVariables, {});
  assert.equal(event.body, 'hello world!');
  assert.equal(event.isBase64Encoded, false);
  assert.equal(event.requestContext.httpMethod, 'POST');
  assert.equal(event.requestContext.accountId, '');
  assert.equal(event.requestContext.resourceId, '');
  assert.equal(event.requestContext.stage, '');
  assert.equal(event.requestContext.resourcePath, '');
  assert.equal(event.requestContext.authorizer, null);
  assert.equal(event.requestContext.apiId, '');
  assert.match(event.requestContext.requestId, /^[0-9a-f-]{36}$/);

  const second = await echoEvent(url, { method: 'POST', body: 'dGVzdA==' });
  assert.equal(second.event.body, 'dGVzdA==');
  assert.equal(second.event.isBase64Encoded, true);
});

test('event: a GET without body, duplicate headers (last wins), X-Request-ID', async () => {
  const url = await serveHandler(ECHO);
  const response = await request(`${url}/`, {
    headers: { 'X-Dup': ['first', 'last'], 'X-Request-ID': 'req-123' },
  });
  assert.equal(response.status, 200);
  const { event } = JSON.parse(response.body.toString());
  assert.equal(event.headers['X-Dup'], 'last');
  assert.equal(event.headers['X-Request-Id'], 'req-123');
  assert.equal(event.requestContext.requestId, 'req-123');
  assert.equal(event.httpMethod, 'GET');
  assert.equal(event.body, '');
  assert.deepEqual(event.queryStringParameters, {});
});

test('event: the body is passed as utf-8 text', async () => {
  const url = await serveHandler(ECHO);
  const { event } = await echoEvent(url, { method: 'POST', body: JSON.stringify({ name: 'café' }) });
  assert.deepEqual(JSON.parse(event.body), { name: 'café' });
  assert.equal(event.isBase64Encoded, false);
});

test('context comes from the SCW_APPLICATION_* environment', async () => {
  const url = await serveHandler(ECHO, {
    env: {
      SCW_APPLICATION_NAME: 'my-function',
      SCW_APPLICATION_MEMORY: '512',
      SCW_APPLICATION_VERSION: '3',
    },
  });
  const { context } = await echoEvent(url);
  assert.deepEqual(context, { memoryLimitInMb: 512, functionName: 'my-function', functionVersion: '3' });
});

test('context defaults: 128 MB, the handler name, empty version', async () => {
  const url = await serveHandler(ECHO);
  const { context } = await echoEvent(url);
  assert.deepEqual(context, { memoryLimitInMb: 128, functionName: 'handle', functionVersion: '' });
});

test('bodies above SCW_PAYLOAD_MAX_SIZE are refused with 413', async () => {
  const url = await serveHandler(`exports.handle = (event) => 'got ' + event.body.length;`, {
    env: { SCW_PAYLOAD_MAX_SIZE: '10' },
  });
  const atLimit = await request(url, { method: 'POST', body: 'x'.repeat(10) });
  assert.equal(atLimit.status, 200);
  assert.equal(atLimit.body.toString(), 'got 10');

  const above = await request(url, { method: 'POST', body: 'x'.repeat(11) });
  assert.equal(above.status, 413);
  assert.equal(above.body.toString(), 'Request payload too large');
  assert.equal(above.headers['access-control-allow-origin'], '*');

  // Without Content-Length (chunked), the limit applies to the bytes received.
  const chunked = await request(url, { method: 'POST', chunks: ['x'.repeat(6), 'x'.repeat(6)] });
  assert.equal(chunked.status, 413);
});

test('the default payload limit is 6 MiB', async () => {
  const url = await serveHandler(`exports.handle = (event) => 'got ' + event.body.length;`);
  const above = await request(url, { method: 'POST', body: Buffer.alloc(6291456 + 1, 0x61) });
  assert.equal(above.status, 413);
  const atLimit = await request(url, { method: 'POST', body: Buffer.alloc(6291456, 0x61) });
  assert.equal(atLimit.status, 200);
  assert.equal(atLimit.body.toString(), 'got 6291456');
});

test('a handler in a sub-folder: src/app.main', async () => {
  const url = await serve({
    'src/app.js': `const { greet } = require('./lib/greet'); exports.main = () => greet('sub');`,
    'src/lib/greet.js': `exports.greet = (name) => 'hello ' + name;`,
  }, { handler: 'src/app.main' });
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.equal(await response.text(), 'hello sub');
});

test('a missing export answers 500 naming it, on every request', async () => {
  const url = await serveHandler(`exports.other = () => 'x';`, { handler: 'handler.handle' });
  for (let i = 0; i < 2; i += 1) {
    const response = await fetch(url);
    assert.equal(response.status, 500);
    const text = await response.text();
    assert.match(text, /"handle"/);
    assert.match(text, /handler\.js/);
  }
});

test('a missing file answers 500 naming it', async () => {
  const url = await serve({ 'other.js': `exports.handle = () => 'x';` }, { handler: 'nothere.handle' });
  const response = await fetch(url);
  assert.equal(response.status, 500);
  assert.match(await response.text(), /nothere\.js/);
});

test('a handler that fails to load answers 500 with the error', async () => {
  const url = await serveHandler(`throw new Error('init failed');`);
  const response = await fetch(url);
  assert.equal(response.status, 500);
  assert.match(await response.text(), /init failed/);
});

test('an ES module .mjs handler', async () => {
  const url = await serve({
    'handler.mjs': `export async function handle(event, context) {
      return { statusCode: 200, body: { esm: true, method: event.httpMethod } };
    }`,
  });
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { esm: true, method: 'GET' });
});

test('an ES module .js handler under "type": "module"', async () => {
  const url = await serve({
    'package.json': JSON.stringify({ type: 'module' }),
    'handler.js': `export const handle = () => 'esm js';`,
  });
  const response = await fetch(url);
  assert.equal(await response.text(), 'esm js');
});

test('a .cjs handler', async () => {
  const url = await serve({ 'handler.cjs': `module.exports.handle = () => 'cjs';` });
  const response = await fetch(url);
  assert.equal(await response.text(), 'cjs');
});

test('run as main: listens on $PORT, survives asynchronous exceptions, stops on SIGTERM', async () => {
  const dir = codeDir({
    'lib/fn.js': `
      exports.run = (event) => {
        if (event.path === '/async-throw') {
          return new Promise(() => { setTimeout(() => { throw new Error('late failure'); }, 5); });
        }
        return 'alive ' + process.env.CUSTOM_VAR;
      };`,
  });
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'server.js')], {
    env: { ...process.env, PORT: '0', NUAGE_CODE_DIR: dir, NUAGE_HANDLER: 'lib/fn.run', CUSTOM_VAR: 'yes' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (data) => { stderr += data; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    const line = await new Promise((resolve, reject) => {
      let stdout = '';
      child.stdout.on('data', (data) => {
        stdout += data;
        if (stdout.includes('\n')) resolve(stdout.split('\n')[0]);
      });
      child.on('exit', () => reject(new Error(`wrapper exited early: ${stderr}`)));
    });
    const match = line.match(/listening on 0\.0\.0\.0:(\d+)/);
    assert.ok(match, line);
    const url = `http://127.0.0.1:${match[1]}`;

    const failed = await fetch(`${url}/async-throw`);
    assert.equal(failed.status, 500);
    assert.equal(await failed.text(), 'function invocation failed: late failure');
    assert.match(stderr, /late failure/);

    const ok = await fetch(url);
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), 'alive yes');
  } finally {
    child.kill('SIGTERM');
  }
  const { code } = await exited;
  assert.equal(code, 0);
});
