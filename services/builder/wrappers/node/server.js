'use strict';
// nuage Node.js runtime wrapper.
//
// A plain-Node HTTP server (standard library only) that loads a tenant's handler and
// implements the Scaleway Functions runtime contract: API-Gateway-proxy-shaped event,
// `{memoryLimitInMb, functionName, functionVersion}` context, callback / promise / plain
// return values, response records `{statusCode, headers, body, isBase64Encoded}`, CORS
// default headers, errors as 500 and a payload size limit answered with 413.
//
// This file is copied alone into function images: it must stay self-contained.
// See README.md next to it for the contract and the environment it reads.

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { pathToFileURL } = require('node:url');
const { AsyncLocalStorage } = require('node:async_hooks');

const DEFAULT_PORT = 8080;
const DEFAULT_CODE_DIR = '/code';
const DEFAULT_HANDLER = 'handler.handle';
const DEFAULT_MEMORY_MB = 128;
const DEFAULT_PAYLOAD_MAX_SIZE = 6291456; // 6 MiB
const EXTENSIONS = ['.js', '.mjs', '.cjs'];

const CORS_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Headers': 'Content-Type',
};

function logError(message, error) {
  const detail = error && error.stack ? error.stack : error !== undefined ? String(error) : '';
  process.stderr.write(`[nuage] ${message}${detail ? `\n${detail}` : ''}\n`);
}

function errorMessage(error) {
  if (error instanceof Error) return error.message;
  if (error && typeof error === 'object' && typeof error.message === 'string') return error.message;
  return String(error);
}

// ---------------------------------------------------------------------------------------
// Handler loading
// ---------------------------------------------------------------------------------------

/** Splits `<path/file>.<export>` at its last dot. */
function parseHandlerName(name) {
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || dot === name.length - 1) {
    throw new Error(`invalid handler "${name}": expected <path/file>.<export>, e.g. handler.handle`);
  }
  return { file: name.slice(0, dot), exportName: name.slice(dot + 1) };
}

function isFile(candidate) {
  try {
    return fs.statSync(candidate).isFile();
  } catch {
    return false;
  }
}

async function importModule(file) {
  return import(pathToFileURL(file).href);
}

async function loadModule(file) {
  if (file.endsWith('.mjs')) return importModule(file);
  try {
    return require(file);
  } catch (error) {
    // `.js` files under `"type": "module"` are ES modules: fall back to import().
    if (error && (error.code === 'ERR_REQUIRE_ESM' || error.code === 'ERR_REQUIRE_ASYNC_MODULE')) {
      return importModule(file);
    }
    throw error;
  }
}

function findExport(mod, exportName) {
  if (mod == null) return undefined;
  if (typeof mod[exportName] === 'function') return mod[exportName];
  // ES module whose default export is an object of handlers, or CommonJS loaded via import().
  const fallback = mod.default;
  if (fallback != null && typeof fallback[exportName] === 'function') return fallback[exportName];
  return mod[exportName];
}

/** Resolves and loads the handler; rejects with an Error naming the file or the export. */
async function loadHandler(codeDir, handlerName) {
  const { file, exportName } = parseHandlerName(handlerName);
  const base = path.resolve(codeDir, file);
  const candidates = EXTENSIONS.map((extension) => base + extension);
  if (path.extname(base) !== '') candidates.push(base);
  const found = candidates.find(isFile);
  if (!found) {
    throw new Error(
      `handler "${handlerName}": file not found (tried ${candidates.join(', ')})`,
    );
  }
  let mod;
  try {
    mod = await loadModule(found);
  } catch (error) {
    const wrapped = new Error(`handler "${handlerName}": cannot load ${found}: ${errorMessage(error)}`);
    wrapped.cause = error;
    throw wrapped;
  }
  const fn = findExport(mod, exportName);
  if (typeof fn !== 'function') {
    throw new Error(
      `handler "${handlerName}": ${found} has no exported function "${exportName}"` +
        (fn === undefined ? '' : ` (it is ${typeof fn})`),
    );
  }
  return { fn, exportName, file: found };
}

// ---------------------------------------------------------------------------------------
// Event and context
// ---------------------------------------------------------------------------------------

/** Go's textproto.CanonicalMIMEHeaderKey: `x-request-id` → `X-Request-Id`. */
function canonicalHeaderKey(key) {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(key)) return key;
  return key.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash, letter) => dash + letter.toUpperCase());
}

/**
 * Request headers, last value wins, keyed like the Go core runtime does (`Content-Type`).
 * Lower-case aliases are added as non-enumerable properties, so `headers['content-type']`
 * works too without showing up in JSON.stringify / Object.keys.
 */
function eventHeaders(rawHeaders) {
  const headers = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    headers[canonicalHeaderKey(rawHeaders[i])] = rawHeaders[i + 1];
  }
  for (const key of Object.keys(headers)) {
    const lower = key.toLowerCase();
    if (lower !== key && !Object.prototype.hasOwnProperty.call(headers, lower)) {
      Object.defineProperty(headers, lower, {
        value: headers[key],
        enumerable: false,
        writable: true,
        configurable: true,
      });
    }
  }
  return headers;
}

function decodePath(pathname) {
  try {
    return decodeURIComponent(pathname);
  } catch {
    return pathname;
  }
}

/**
 * The runtime's base64 heuristic: the body is flagged when it *is* valid standard base64
 * (padding required, CR/LF ignored, as Go's base64.StdEncoding.DecodeString accepts), so
 * "dGVzdA==", "test" and the empty body are flagged; the body itself is passed unchanged.
 */
function isBase64Char(code) {
  return (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || (code >= 48 && code <= 57) ||
    code === 43 || code === 47; // A-Z a-z 0-9 + /
}

function looksBase64(body) {
  // A loop rather than a regular expression: bodies go up to several MiB.
  let count = 0; // significant characters, CR/LF excluded
  let padding = 0;
  for (let i = 0; i < body.length; i += 1) {
    const code = body.charCodeAt(i);
    if (code === 13 || code === 10) continue;
    if (code === 61) { // '='
      padding += 1;
      if (padding > 2) return false;
    } else if (padding > 0 || !isBase64Char(code)) {
      return false; // data after padding, or a foreign character
    }
    count += 1;
  }
  if (count % 4 !== 0) return false;
  return true;
}

function buildEvent(req, bodyBuffer) {
  const url = new URL(req.url, 'http://localhost');
  const queryStringParameters = {};
  for (const [key, value] of url.searchParams) queryStringParameters[key] = value;
  const headers = eventHeaders(req.rawHeaders);
  const body = bodyBuffer.toString('utf8');
  const requestId = headers['X-Request-Id'] || crypto.randomUUID();
  return {
    resource: '',
    path: decodePath(url.pathname),
    httpMethod: req.method,
    headers,
    multiValueHeaders: null,
    queryStringParameters,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: {},
    requestContext: {
      accountId: '',
      resourceId: '',
      stage: '',
      requestId,
      resourcePath: '',
      authorizer: null,
      httpMethod: req.method,
      apiId: '',
    },
    body,
    isBase64Encoded: looksBase64(body),
  };
}

function buildContext(config, exportName) {
  return {
    memoryLimitInMb: config.memoryLimitInMb,
    functionName: config.functionName !== undefined ? config.functionName : exportName,
    functionVersion: config.functionVersion,
  };
}

// ---------------------------------------------------------------------------------------
// Invocation
// ---------------------------------------------------------------------------------------

/**
 * The invocation an asynchronous callback belongs to, so that an exception thrown from a
 * timer or an unhandled rejection inside the handler fails that invocation with a 500
 * (when running as the main module, see the process hooks at the end of this file).
 */
const invocations = new AsyncLocalStorage();

/**
 * Calls `fn(event, context, callback)` and settles with the first outcome among: the
 * callback, the returned promise, a thrown error, or a plain returned value. A plain
 * `undefined` return from a handler that declares a callback parameter waits for the
 * callback (classic Lambda-style callback handlers).
 */
function invoke(fn, event, context) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const succeed = (value) => {
      if (!settled) {
        settled = true;
        resolve(value);
      }
    };
    const fail = (error) => {
      if (!settled) {
        settled = true;
        reject(error);
      }
    };
    const callback = (error, result) => {
      if (error !== undefined && error !== null) fail(error);
      else succeed(result);
    };
    let returned;
    try {
      returned = invocations.run({ fail }, () => fn(event, context, callback));
    } catch (error) {
      fail(error);
      return;
    }
    if (returned !== null && (typeof returned === 'object' || typeof returned === 'function') &&
        typeof returned.then === 'function') {
      Promise.resolve(returned).then(succeed, fail);
    } else if (returned !== undefined || fn.length < 3) {
      succeed(returned);
    }
  });
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

class ResponseError extends Error {}

function isBinary(value) {
  return Buffer.isBuffer(value) || value instanceof Uint8Array;
}

/** Serialises a body value: `{bytes, json}`; `json` tells whether it was written as JSON. */
function serialiseBody(value) {
  if (value === undefined || value === null) return { bytes: Buffer.alloc(0), json: false };
  if (typeof value === 'string') return { bytes: Buffer.from(value, 'utf8'), json: false };
  if (isBinary(value)) return { bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength), json: false };
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return { bytes: Buffer.from(String(value), 'utf8'), json: false };
  }
  let text;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new ResponseError(`the function result cannot be serialised as JSON: ${errorMessage(error)}`);
  }
  return { bytes: Buffer.from(text === undefined ? '' : text, 'utf8'), json: true };
}

/** Go-like content sniffing for bodies the handler did not give a Content-Type. */
function sniffContentType(bytes, json) {
  if (json) return 'application/json';
  const start = bytes.subarray(0, 512);
  const signatures = [
    [[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'image/png'],
    [[0xff, 0xd8, 0xff], 'image/jpeg'],
    [[0x47, 0x49, 0x46, 0x38], 'image/gif'],
    [[0x25, 0x50, 0x44, 0x46, 0x2d], 'application/pdf'],
    [[0x1f, 0x8b, 0x08], 'application/x-gzip'],
    [[0x50, 0x4b, 0x03, 0x04], 'application/zip'],
    [[0x00, 0x61, 0x73, 0x6d], 'application/wasm'],
  ];
  for (const [magic, type] of signatures) {
    if (magic.every((byte, index) => start[index] === byte)) return type;
  }
  if (start.length >= 12 && start.toString('latin1', 0, 4) === 'RIFF' && start.toString('latin1', 8, 12) === 'WEBP') {
    return 'image/webp';
  }
  const text = start.toString('latin1').replace(/^[\t\n\f\r ]+/, '');
  if (/^<(?:!DOCTYPE HTML|HTML|HEAD|SCRIPT|IFRAME|H1|DIV|FONT|TABLE|A|STYLE|TITLE|B|BODY|BR|P|!--)[ >]/i.test(text)) {
    return 'text/html; charset=utf-8';
  }
  if (text.startsWith('<?xml')) return 'text/xml; charset=utf-8';
  // Binary if any control byte other than whitespace/escape shows up (as Go's sniffer does).
  for (const byte of start) {
    if (byte <= 0x08 || byte === 0x0b || (byte >= 0x0e && byte <= 0x1a) || (byte >= 0x1c && byte <= 0x1f)) {
      return 'application/octet-stream';
    }
  }
  return 'text/plain; charset=utf-8';
}

function headerValue(name, value) {
  if (Array.isArray(value)) return value.filter((item) => item !== undefined && item !== null).map(String);
  if (typeof value === 'object') {
    throw new ResponseError(`the function returned an invalid value for header "${name}"`);
  }
  return String(value);
}

/** Turns a handler result into `{statusCode, headers, body}`; headers exclude the defaults. */
function buildResponse(result) {
  const isRecord = result !== null && typeof result === 'object' && !Array.isArray(result) &&
    !isBinary(result) && result.statusCode !== undefined && result.statusCode !== null;
  if (!isRecord) {
    const { bytes, json } = serialiseBody(result);
    return { statusCode: 200, headers: [], body: bytes, json };
  }
  const statusCode = Number(result.statusCode);
  if (!Number.isInteger(statusCode) || statusCode < 200 || statusCode > 599) {
    throw new ResponseError(`the function returned an invalid statusCode: ${JSON.stringify(result.statusCode)}`);
  }
  const headers = [];
  if (result.headers !== undefined && result.headers !== null) {
    if (typeof result.headers !== 'object' || Array.isArray(result.headers)) {
      throw new ResponseError('the function returned invalid headers: expected an object');
    }
    for (const [name, value] of Object.entries(result.headers)) {
      if (value === undefined || value === null) continue;
      headers.push([name, headerValue(name, value)]);
    }
  }
  let body;
  let json = false;
  if (result.isBase64Encoded === true && typeof result.body === 'string') {
    body = Buffer.from(result.body, 'base64');
  } else {
    ({ bytes: body, json } = serialiseBody(result.body));
  }
  return { statusCode, headers, body, json };
}

function send(res, statusCode, headers, body) {
  if (res.headersSent || res.destroyed) return;
  for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
  for (const [name, value] of headers) res.setHeader(name, value);
  if (statusCode !== 204 && statusCode !== 304) res.setHeader('Content-Length', body.length);
  res.writeHead(statusCode);
  res.end(body);
}

function sendText(res, statusCode, message, extraHeaders = []) {
  send(res, statusCode, [['Content-Type', 'text/plain; charset=utf-8'], ...extraHeaders], Buffer.from(message, 'utf8'));
}

function writeResult(res, result) {
  let response;
  try {
    response = buildResponse(result);
  } catch (error) {
    logError('invalid function response:', error);
    sendText(res, 500, `function invocation failed: ${errorMessage(error)}`);
    return;
  }
  const headers = response.headers;
  const hasContentType = headers.some(([name]) => name.toLowerCase() === 'content-type');
  const emptyStatus = response.statusCode === 204 || response.statusCode === 304;
  if (!hasContentType && !emptyStatus && (response.body.length > 0 || response.json)) {
    headers.push(['Content-Type', sniffContentType(response.body, response.json)]);
  }
  try {
    send(res, response.statusCode, headers, emptyStatus ? Buffer.alloc(0) : response.body);
  } catch (error) {
    // e.g. a header name or value Node refuses (invalid characters).
    logError('invalid function response:', error);
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    sendText(res, 500, `function invocation failed: invalid response: ${errorMessage(error)}`);
  }
}

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

function positiveInteger(value, fallback) {
  if (value === undefined || value === null || String(value).trim() === '') return fallback;
  const parsed = Number(value);
  return Number.isFinite(parsed) && parsed >= 0 ? Math.floor(parsed) : fallback;
}

function readConfig(options) {
  const env = options.env !== undefined ? options.env : process.env;
  return {
    codeDir: options.codeDir || env.NUAGE_CODE_DIR || DEFAULT_CODE_DIR,
    handler: options.handler || env.NUAGE_HANDLER || DEFAULT_HANDLER,
    payloadMaxSize: positiveInteger(env.SCW_PAYLOAD_MAX_SIZE, DEFAULT_PAYLOAD_MAX_SIZE),
    memoryLimitInMb: positiveInteger(env.SCW_APPLICATION_MEMORY, DEFAULT_MEMORY_MB),
    functionName: env.SCW_APPLICATION_NAME,
    functionVersion: env.SCW_APPLICATION_VERSION !== undefined ? env.SCW_APPLICATION_VERSION : '',
  };
}

const PAYLOAD_TOO_LARGE = 'Request payload too large';

function declaredTooLarge(req, limit) {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > limit;
}

function rejectTooLarge(req, res) {
  // Answer at once and close the connection; keep discarding what the client still sends
  // so that it can read the answer instead of seeing a reset.
  sendText(res, 413, PAYLOAD_TOO_LARGE, [['Connection', 'close']]);
  req.resume();
}

/** Reads the request body; resolves null (after answering 413) when it exceeds the limit. */
function readBody(req, res, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let rejected = false;
    req.on('data', (chunk) => {
      if (rejected) return;
      size += chunk.length;
      if (size > limit) {
        rejected = true;
        chunks.length = 0;
        rejectTooLarge(req, res);
        resolve(null);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!rejected) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (error) => {
      if (!rejected) reject(error);
    });
  });
}

/**
 * Creates the wrapper's HTTP server, not yet listening.
 * options: {codeDir, handler, env} — override NUAGE_CODE_DIR, NUAGE_HANDLER and the
 * environment the SCW_* variables are read from (process.env when `env` is not given).
 */
function createServer(options = {}) {
  const config = readConfig(options);
  const loading = loadHandler(config.codeDir, config.handler);
  // Logged once; every request then answers 500 with the same message.
  loading.catch((error) => logError(`cannot load the function handler: ${error.message}`, error.cause));

  async function handle(req, res) {
    if (declaredTooLarge(req, config.payloadMaxSize)) {
      rejectTooLarge(req, res);
      return;
    }
    const body = await readBody(req, res, config.payloadMaxSize);
    if (body === null) return;

    let loaded;
    try {
      loaded = await loading;
    } catch (error) {
      sendText(res, 500, `function invocation failed: ${error.message}`);
      return;
    }

    const event = buildEvent(req, body);
    const context = buildContext(config, loaded.exportName);
    let result;
    try {
      result = await invoke(loaded.fn, event, context);
    } catch (error) {
      logError(`function invocation failed (${req.method} ${req.url}):`, error);
      sendText(res, 500, `function invocation failed: ${errorMessage(error)}`);
      return;
    }
    writeResult(res, result);
  }

  function onRequest(req, res) {
    handle(req, res).catch((error) => {
      logError('internal wrapper error:', error);
      if (!res.headersSent) sendText(res, 500, 'function invocation failed: internal error');
      else res.destroy();
    });
  }

  const server = http.createServer(onRequest);
  // `Expect: 100-continue`: refuse oversized bodies before the client sends them.
  server.on('checkContinue', (req, res) => {
    if (declaredTooLarge(req, config.payloadMaxSize)) {
      sendText(res, 413, PAYLOAD_TOO_LARGE, [['Connection', 'close']]);
      return;
    }
    res.writeContinue();
    onRequest(req, res);
  });
  // Keep idle connections from a proxy in front longer than its own idle timeout.
  server.keepAliveTimeout = 65000;
  server.headersTimeout = 66000;
  return server;
}

module.exports = { createServer };

if (require.main === module) {
  // Keep serving when tenant code throws asynchronously: log, and fail the invocation it
  // came from when it is known.
  process.on('uncaughtException', (error) => {
    logError('uncaught exception in the function:', error);
    const invocation = invocations.getStore();
    if (invocation) invocation.fail(error);
  });
  process.on('unhandledRejection', (reason) => {
    logError('unhandled promise rejection in the function:', reason);
    const invocation = invocations.getStore();
    if (invocation) invocation.fail(reason);
  });

  const port = positiveInteger(process.env.PORT, DEFAULT_PORT);
  const server = createServer();
  server.on('error', (error) => {
    logError(`cannot listen on 0.0.0.0:${port}:`, error);
    process.exit(1);
  });
  server.listen(port, '0.0.0.0', () => {
    const config = readConfig({});
    console.log(
      `nuage node wrapper listening on 0.0.0.0:${server.address().port} ` +
        `(handler ${config.handler}, code ${config.codeDir})`,
    );
  });
  const stop = () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 5000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
