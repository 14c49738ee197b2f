// Scaleway's JavaScript SDK (@scaleway/sdk-function, pinned in package-lock.json), unchanged,
// against a running nuage: functions v1beta1 through create, deploy, get, list and delete, with
// the SDK's own waiters. Run by clients/run (node --test) with SCW_API_URL, SCW_ACCESS_KEY,
// SCW_SECRET_KEY and SCW_DEFAULT_PROJECT_ID set for a tenant of its own; the packages are resolved from
// SCW_JS_MODULES (the cached `npm ci` of this folder).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gone } from '../common.mjs';
import { fast, scalewayClient, sdkRequire } from './sdk.mjs';

const { Functionv1beta1 } = sdkRequire('@scaleway/sdk-function');
const api = new Functionv1beta1.API(scalewayClient());

// A zip of one handler.js, made with the zip tool as a tenant would.
function archive() {
  const dir = mkdtempSync(join(tmpdir(), 'nuage-js-'));
  writeFileSync(join(dir, 'handler.js'), 'exports.handle = async () => ({statusCode: 200, body: "js sdk " + process.env.FROM});\n');
  execFileSync('zip', ['-q', 'code.zip', 'handler.js'], { cwd: dir });
  return readFileSync(join(dir, 'code.zip'));
}

test('a function created, deployed, read, listed and deleted through the JavaScript SDK', async () => {
  const runtimes = await api.listFunctionRuntimes();
  const node = runtimes.runtimes.find((runtime) => runtime.name.startsWith('node'));
  assert.ok(node, 'a node runtime is offered');

  let namespace = await api.createNamespace({ name: 'js-sdk', environmentVariables: { FROM: 'namespace' } });
  assert.equal(namespace.projectId, process.env.SCW_DEFAULT_PROJECT_ID);
  assert.ok(namespace.createdAt instanceof Date);
  namespace = await api.waitForNamespace({ namespaceId: namespace.id }, fast);
  assert.equal(namespace.status, 'ready');

  let fn = await api.createFunction({ namespaceId: namespace.id, name: 'hello', runtime: node.name, handler: 'handler.handle', timeout: '20s' });
  assert.equal(fn.status, 'created');
  assert.equal(fn.timeout, '20s');
  const code = archive();
  const upload = await api.getFunctionUploadURL({ functionId: fn.id, contentLength: code.length });
  const put = await fetch(upload.url, { method: 'PUT', body: code, headers: { 'Content-Type': 'application/octet-stream' } });
  assert.equal(put.status, 200);
  assert.equal((await api.deployFunction({ functionId: fn.id })).status, 'pending');
  fn = await api.waitForFunction({ functionId: fn.id }, fast);
  assert.equal(fn.status, 'ready', fn.errorMessage ?? '');
  assert.ok(fn.readyAt instanceof Date);
  const answer = await fetch(`http://${fn.domainName}`);
  assert.equal(await answer.text(), 'js sdk namespace');

  const download = await api.getFunctionDownloadURL({ functionId: fn.id });
  assert.deepEqual(Buffer.from(await (await fetch(download.url)).arrayBuffer()), code);
  const read = await api.getFunction({ functionId: fn.id });
  assert.equal(read.name, 'hello');
  const listed = await api.listFunctions({ namespaceId: namespace.id });
  assert.deepEqual(listed.functions.map((f) => f.id), [fn.id]);
  assert.equal(listed.totalCount, 1);
  const all = await api.listNamespaces({ name: 'js-sdk' });
  assert.deepEqual(all.namespaces.map((n) => n.id), [namespace.id]);

  assert.equal((await api.deleteFunction({ functionId: fn.id })).status, 'deleting');
  // The SDK parses Scaleway's error body into its own error classes.
  const missing = await gone(() => api.getFunction({ functionId: fn.id }));
  assert.equal(missing.constructor.name, 'ResourceNotFoundError');
  assert.equal(missing.resourceId, fn.id);
  assert.equal((await api.deleteNamespace({ namespaceId: namespace.id })).status, 'deleting');
  await gone(() => api.getNamespace({ namespaceId: namespace.id }));
});
