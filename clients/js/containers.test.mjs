// Scaleway's JavaScript SDK (@scaleway/sdk-container, pinned in package-lock.json), unchanged,
// against a running nuage: containers v1beta1 through create, deploy, get, list and delete, with
// the SDK's own waiters. Run by clients/run (node --test) with the SCW_* variables of a tenant of
// its own, SCW_JS_MODULES (the cached `npm ci` of this folder), and CLIENT_SERVER_BINARY and
// CLIENT_REGISTRY_DIR for clients/containers/push.py, which pushes the container's image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gone } from '../common.mjs';
import { fast, scalewayClient, sdkRequire } from './sdk.mjs';

const { Containerv1beta1 } = sdkRequire('@scaleway/sdk-container');
const api = new Containerv1beta1.API(scalewayClient());
const push = join(dirname(fileURLToPath(import.meta.url)), '..', 'containers', 'push.py');

test('a container created, deployed, read, listed and deleted through the JavaScript SDK', async () => {
  let namespace = await api.createNamespace({ name: 'js-boxes', environmentVariables: { GREETING: 'hola' } });
  namespace = await api.waitForNamespace({ namespaceId: namespace.id }, fast);
  assert.equal(namespace.status, 'ready');
  const image = execFileSync('python3', [push, namespace.registryEndpoint, 'js'], { encoding: 'utf8' }).trim();

  let container = await api.createContainer({
    namespaceId: namespace.id,
    name: 'js',
    registryImage: image,
    port: 3000,
    args: ['3000'],
    healthCheck: { failureThreshold: 20, interval: '0.5s', http: { path: '/healthz' } },
  });
  assert.equal(container.status, 'created');
  assert.equal(container.port, 3000);
  assert.equal((await api.deployContainer({ containerId: container.id })).status, 'pending');
  container = await api.waitForContainer({ containerId: container.id }, fast);
  assert.equal(container.status, 'ready', container.errorMessage ?? '');
  assert.ok(container.readyAt instanceof Date);
  const answer = await (await fetch(`http://${container.domainName}`)).json();
  assert.deepEqual(answer, { command: '/server 3000', greeting: 'hola', secret: '' });

  const read = await api.getContainer({ containerId: container.id });
  assert.equal(read.healthCheck.http.path, '/healthz');
  const listed = await api.listContainers({ namespaceId: namespace.id });
  assert.deepEqual(listed.containers.map((c) => c.id), [container.id]);
  assert.equal(listed.totalCount, 1);

  assert.equal((await api.deleteContainer({ containerId: container.id })).status, 'deleting');
  const missing = await gone(() => api.getContainer({ containerId: container.id }));
  assert.equal(missing.constructor.name, 'ResourceNotFoundError');
  assert.equal((await api.deleteNamespace({ namespaceId: namespace.id })).status, 'deleting');
  await gone(() => api.getNamespace({ namespaceId: namespace.id }));
});
