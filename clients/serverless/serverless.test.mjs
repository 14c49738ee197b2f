// The Serverless Framework (serverless@3) with serverless-scaleway-functions@0.1.18, run
// unchanged against a nuage that `clients/run` started. The steps depend on each other and run
// in order: deploy, call, jwt and private call, cron, logs, redeploy, remove.
//
// Environment (set by clients/run): SLS_DIR (the service folder, next to the plugin's
// node_modules), SCW_URL, SCW_TOKEN, SCW_ORGANIZATION (read by the plugin), HOME (scratch).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { assertTokensOpen, eventually, getJson, jwtTokens } from "../common.mjs";

const dir = process.env.SLS_DIR;
const api = process.env.SCW_URL;
const service = "sls-suite";

/** Runs `serverless <args>` in the service folder and returns its output; fails on a non-zero exit. */
function sls(...args) {
  return run(dir, args);
}

/**
 * Runs `serverless <args>` with Serverless Framework 1, which 0.1.18 was written for. Only
 * `logs -f` needs it: frameworks 2 and 3 hand a plugin `-f` as `options.function`, and 0.1.18's
 * logs command reads `options.f` (with serverless@3 it fails with `application "undefined" not
 * found` before any request).
 */
function slsV1(...args) {
  return run(process.env.SLS_V1_DIR, args);
}

function run(cwd, args) {
  const bin = join(cwd, "node_modules", "serverless", "bin", "serverless.js");
  const child = spawnSync(process.execPath, [bin, ...args], {
    cwd,
    env: {
      ...process.env,
      SLS_TELEMETRY_DISABLED: "1",
      SLS_TRACKING_DISABLED: "1",
      SLS_NOTIFICATIONS_MODE: "off",
      FORCE_COLOR: "0",
    },
    encoding: "utf8",
    timeout: 240_000,
  });
  const output = `${child.stdout}\n${child.stderr}`;
  assert.equal(child.status, 0, `serverless ${args.join(" ")} exited ${child.status} (${child.signal ?? "no signal"}):\n${output}`);
  return output;
}

/** Calls nuage's API as the tenant the plugin uses. */
async function apiCall(path, method = "GET") {
  const response = await fetch(`${api}${path}`, { method, headers: { "X-Auth-Token": process.env.SCW_TOKEN } });
  return { status: response.status, body: await response.json() };
}

/** Returns `url` as fetch needs it: nuage's endpoints, like Scaleway's, may come without a scheme. */
function withScheme(url) {
  return /^https?:\/\//.test(url) ? url : `http://${url}`;
}

/** Returns the endpoint `serverless deploy` printed for each function. */
function endpointsOf(output) {
  const endpoints = {};
  for (const [, name, url] of output.matchAll(/Function (\S+) has been deployed to: (\S+)/g)) {
    endpoints[name] = withScheme(url);
  }
  return endpoints;
}

const state = {};

test("serverless deploy creates the namespace and its three functions, and prints their endpoints", () => {
  const output = sls("deploy");
  state.endpoints = endpointsOf(output);
  assert.deepEqual(Object.keys(state.endpoints).sort(), ["guarded", "hello-node", "hello-python"], output);
  assert.match(output, /Deployed a new trigger for application hello-node/);
});

test("the namespace holds what the service file describes", async () => {
  const namespaces = (await apiCall(`/namespaces?name=${service}`)).body.namespaces;
  assert.equal(namespaces.length, 1);
  state.namespace = namespaces[0];
  assert.equal(state.namespace.status, "ready");
  assert.deepEqual(state.namespace.environment_variables, { NS_VAR: "namespace value" });
  const functions = (await apiCall(`/namespaces/${state.namespace.id}/functions`)).body.functions;
  state.functions = Object.fromEntries(functions.map((f) => [f.name, f]));
  assert.equal(state.functions["hello-node"].runtime, "node14");
  assert.equal(state.functions["hello-python"].runtime, "python3");
  assert.equal(state.functions.guarded.privacy, "private");
  assert.equal(state.functions["hello-node"].privacy, "public");
  for (const f of functions) assert.equal(f.status, "ready", `${f.name}: ${f.error_message}`);
  const crons = (await apiCall(`/crons?application_id=${state.functions["hello-node"].id}`)).body.crons;
  assert.equal(crons.length, 1);
  assert.equal(crons[0].schedule, "* * * * *");
  assert.deepEqual(crons[0].args, { from: "cron" });
});

test("both endpoints answer with the environment they were given", async () => {
  assert.deepEqual(await getJson(state.endpoints["hello-node"]), {
    runtime: "node",
    version: "v1",
    ns_var: "namespace value",
    fn_var: "node value",
    name: "hello-node",
  });
  assert.deepEqual(await getJson(state.endpoints["hello-python"]), {
    runtime: "python",
    ns_var: "overridden by the function",
    fn_var: "python value",
    name: "hello-python",
  });
});

test("serverless jwt prints tokens that open the private function, which refuses calls without one", async () => {
  const tokens = jwtTokens(sls("jwt"), service);

  const url = state.endpoints.guarded;
  const refused = await fetch(url);
  const refusedBody = await refused.text();
  // As the v1alpha2 documentation says: without SCW_FUNCTIONS_TOKEN, "the call is rejected (Status Code 404)".
  assert.equal(refused.status, 404, refusedBody);
  assert.doesNotMatch(refusedBody, /guarded answer/);
  await assertTokensOpen(url, tokens);
});

test("the cron fires: hello-node receives its args within a minute and a half", async () => {
  const id = state.functions["hello-node"].id;
  await eventually(
    "a cron call in hello-node's logs",
    async () => {
      const logs = (await apiCall(`/logs?application_id=${id}`)).body.logs;
      return logs.some((line) => line.message.includes('called: POST body={"from":"cron"}'));
    },
    90,
  );
});

test("serverless logs -f prints what the function logged, oldest first", async () => {
  const get = "hello-node v1 called: GET";
  const cron = 'hello-node v1 called: POST body={"from":"cron"}';
  const output = slsV1("logs", "-f", "hello-node");
  const httpCall = output.indexOf(get);
  const cronCall = output.indexOf(cron);
  assert.ok(httpCall >= 0 && cronCall >= 0, output);
  // Which came first is the API's to say: the cron may fire between the deploy and the first call.
  const id = state.functions["hello-node"].id;
  const oldestFirst = (await apiCall(`/logs?application_id=${id}&order_by=timestamp_asc`)).body.logs.map(
    (line) => line.message,
  );
  const [httpAt, cronAt] = [get, cron].map((text) => oldestFirst.findIndex((message) => message.includes(text)));
  assert.ok(httpAt >= 0 && cronAt >= 0, oldestFirst.join("\n"));
  assert.equal(
    httpCall < cronCall,
    httpAt < cronAt,
    `the plugin prints the API's newest-first page reversed:\n${output}\nthe API, oldest first:\n${oldestFirst.join("\n")}`,
  );
  const python = slsV1("logs", "-f", "hello-python");
  assert.match(python, /hello-python called: GET/);
});

test("a second serverless deploy after a code change serves the new code", async () => {
  const handler = join(dir, "handler.js");
  writeFileSync(handler, readFileSync(handler, "utf8").replace('const VERSION = "v1";', 'const VERSION = "v2";'));
  const output = sls("deploy");
  assert.deepEqual(endpointsOf(output), state.endpoints, "the endpoints do not change on a redeploy");
  const answer = await getJson(state.endpoints["hello-node"]);
  assert.equal(answer.version, "v2");
  assert.equal(answer.fn_var, "node value");
  const namespaces = (await apiCall(`/namespaces?name=${service}`)).body.namespaces;
  assert.deepEqual(
    namespaces.map((n) => n.id),
    [state.namespace.id],
    "the redeploy reuses the namespace",
  );
  const functions = (await apiCall(`/namespaces/${state.namespace.id}/functions`)).body.functions;
  assert.deepEqual(functions.map((f) => f.id).sort(), Object.values(state.functions).map((f) => f.id).sort());
  const crons = (await apiCall(`/crons?application_id=${state.functions["hello-node"].id}`)).body.crons;
  assert.equal(crons.length, 1, "the plugin replaces the cron, it does not add a second one");
});

test("serverless remove leaves the namespace and everything in it gone", async () => {
  sls("remove");
  assert.deepEqual((await apiCall(`/namespaces?name=${service}`)).body.namespaces, []);
  const namespace = await apiCall(`/namespaces/${state.namespace.id}`);
  assert.equal(namespace.status, 404);
  for (const f of Object.values(state.functions)) {
    assert.equal((await apiCall(`/functions/${f.id}`)).status, 404, f.name);
    assert.equal((await apiCall(`/logs?application_id=${f.id}`)).status, 404, f.name);
  }
  const crons = await apiCall(`/crons?application_id=${state.functions["hello-node"].id}`);
  assert.ok(crons.status === 404 || crons.body.crons.length === 0, JSON.stringify(crons));
  for (const [name, url] of Object.entries(state.endpoints)) {
    const response = await fetch(url);
    assert.equal(response.status, 404, `${name} still answers at ${url}`);
  }
});
