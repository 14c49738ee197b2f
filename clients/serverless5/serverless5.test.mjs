// The Serverless Framework (serverless@3) with serverless-scaleway-functions@0.5.0, the plugin's
// latest release (functions and containers v1beta1), run unchanged against a nuage that
// `clients/run` started behind a TLS front (nginx with a certificate the run made, trusted
// through NODE_EXTRA_CA_CERTS), as `serverless invoke` calls `https://<domain_name>` with the
// certificate checked. The steps depend on each other and run in order: functions (deploy,
// info, invoke, jwt and the private call, the schedule and logs), then containers (deploy,
// info, invoke, logs, remove), then the functions' second deploy after a code change, and
// their remove. Every CLI call runs under a timeout: the plugin polls without one.
//
// Environment (set by clients/run): SLS5_DIR (a folder holding the cached node_modules and a
// copy of functions/ and containers/), SLS5_FRONT (the TLS front, `https://127.0.0.1:<port>`),
// SCW_FUNCTION_URL, SCW_CONTAINER_URL, SCW_SECRET_KEY, SCW_DEFAULT_PROJECT_ID, SCW_REGION (read
// by the plugin), NODE_EXTRA_CA_CERTS, HOME (scratch), and CLIENT_SERVER_BINARY and
// CLIENT_REGISTRY_DIR for clients/containers/push.py, which pushes the container's image.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { assertTokensOpen, eventually, getJson, jwtTokens } from "../common.mjs";

const dir = process.env.SLS5_DIR;
const front = process.env.SLS5_FRONT;
const functionsApi = process.env.SCW_FUNCTION_URL;
const containersApi = process.env.SCW_CONTAINER_URL;
const project = process.env.SCW_DEFAULT_PROJECT_ID;
const push = join(dirname(fileURLToPath(import.meta.url)), "..", "containers", "push.py");
/** How long one CLI call may take before it is killed. */
const CLI_TIMEOUT_MS = 240_000;

/**
 * Runs `serverless <args>` in the folder of `service` (`functions` or `containers`), with `env`
 * added, under a timeout; returns its exit code and output. Asynchronous, so that the Docker
 * daemon's stand-in in this process answers meanwhile.
 */
function run(service, args, env = {}) {
  const bin = join(dir, "node_modules", "serverless", "bin", "serverless.js");
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: join(dir, service),
      env: {
        ...process.env,
        SLS_TELEMETRY_DISABLED: "1",
        SLS_NOTIFICATIONS_MODE: "off",
        FORCE_COLOR: "0",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), CLI_TIMEOUT_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, output: `${stdout}\n${stderr}` });
    });
  });
}

/** Runs `serverless <args>` for `service` and returns its output; fails unless it exits 0. */
async function sls(service, args, env = {}) {
  const result = await run(service, args, env);
  assert.equal(
    result.code,
    0,
    `serverless ${args.join(" ")} (${service}) exited ${result.code} (${result.signal ?? "no signal"}):\n${result.output}`,
  );
  return result;
}

/** Calls nuage's API (`base` is the functions or containers v1beta1 prefix) as the tenant. */
async function apiCall(base, path, method = "GET", body = undefined) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { "X-Auth-Token": process.env.SCW_SECRET_KEY, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/** Returns the endpoints `serverless deploy` printed, by name, for `kind` (Function or Container). */
function endpointsOf(output, kind) {
  const endpoints = {};
  for (const [, name, url] of output.matchAll(new RegExp(`${kind} (\\S+) has been deployed to: (\\S+)`, "g"))) {
    endpoints[name] = url;
  }
  return endpoints;
}

/** Returns what `serverless invoke` wrote on stdout: the answer's body as JSON. */
function invoked(result) {
  const line = result.stdout.trim().split("\n").pop();
  try {
    return JSON.parse(line);
  } catch {
    assert.fail(`serverless invoke printed no answer:\n${result.output}`);
  }
}

/** Asserts that `secrets` is `[{key, hashed_value}]`, with argon2id hashes, for exactly `keys`. */
function hashedSecrets(secrets, keys) {
  assert.deepEqual(secrets.map((secret) => secret.key).sort(), [...keys].sort(), JSON.stringify(secrets));
  for (const secret of secrets) {
    assert.match(secret.hashed_value, /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$/, JSON.stringify(secret));
    assert.equal(secret.value, undefined, "a secret's value is never shown");
  }
}

/**
 * The tenant's own Docker daemon, which the plugin asks to log in to the registry before every
 * container deploy, even when it builds nothing (reference serverless-plugin.md §2.4). There is
 * no Docker engine here: this stands in for the tenant's machine, not for nuage, and answers
 * `POST /auth` as Docker does; it records what it was asked.
 */
const docker = { requests: [] };
docker.server = createServer((request, response) => {
  let body = "";
  request.on("data", (chunk) => (body += chunk));
  request.on("end", () => {
    docker.requests.push({ method: request.method, path: request.url, body });
    response.setHeader("Content-Type", "application/json");
    if (request.method === "POST" && /^(\/v[\d.]+)?\/auth$/.test(request.url)) {
      response.end(JSON.stringify({ Status: "Login Succeeded", IdentityToken: "" }));
    } else {
      response.statusCode = 404;
      response.end(JSON.stringify({ message: `the stand-in daemon answers only POST /auth, not ${request.url}` }));
    }
  });
});
await new Promise((resolve) => docker.server.listen(0, "127.0.0.1", resolve));
const dockerHost = `tcp://127.0.0.1:${docker.server.address().port}`;
after(() => docker.server.close());

const state = {};

test("serverless deploy creates the namespace, its three functions and the schedule, and prints HTTPS endpoints on the front", async () => {
  const { output } = await sls("functions", ["deploy"]);
  state.endpoints = endpointsOf(output, "Function");
  assert.deepEqual(Object.keys(state.endpoints).sort(), ["guarded", "hello-node", "hello-python"], output);
  for (const url of Object.values(state.endpoints)) assert.ok(url.startsWith(`${front}/`), `${url} is on ${front}`);
  assert.match(output, /Deployed a new trigger for application hello-node/);
  assert.doesNotMatch(output, /Runtime information : null/);
});

test("the namespace and functions hold what the service file describes, secrets hashed", async () => {
  const namespaces = (await apiCall(functionsApi, `/namespaces?name=sls5-functions&project_id=${project}`)).body.namespaces;
  assert.equal(namespaces.length, 1);
  state.namespace = namespaces[0];
  assert.equal(state.namespace.status, "ready");
  assert.deepEqual(state.namespace.environment_variables, { NS_VAR: "namespace value" });
  hashedSecrets(state.namespace.secret_environment_variables, ["NS_SECRET"]);
  const functions = (await apiCall(functionsApi, `/namespaces/${state.namespace.id}/functions`)).body.functions;
  state.functions = Object.fromEntries(functions.map((f) => [f.name, f]));
  const node = state.functions["hello-node"];
  assert.equal(node.runtime, "node20");
  assert.equal(state.functions["hello-python"].runtime, "python3");
  assert.equal(state.functions.guarded.privacy, "private");
  assert.equal(node.privacy, "public");
  assert.deepEqual(node.environment_variables, { FN_VAR: "node value" });
  hashedSecrets(node.secret_environment_variables, ["FN_SECRET"]);
  for (const f of functions) {
    assert.equal(f.status, "ready", `${f.name}: ${f.error_message}`);
    assert.equal(`https://${f.domain_name}`, state.endpoints[f.name]);
  }
  const crons = await eventually(
    "hello-node's cron",
    async () => {
      const listed = (await apiCall(functionsApi, `/crons?function_id=${node.id}`)).body.crons;
      return listed.length === 1 && listed;
    },
    10,
  );
  assert.equal(crons[0].schedule, "* * * * *");
  assert.deepEqual(crons[0].args, { from: "cron" });
});

test("serverless info prints each function as the API describes it", async () => {
  const { stdout } = await sls("functions", ["info"]);
  assert.match(stdout, /Stack Outputs:/);
  for (const f of Object.values(state.functions)) {
    assert.ok(stdout.includes(`id: ${f.id}`), `${f.name} in:\n${stdout}`);
    assert.ok(stdout.includes(`domain_name: ${f.domain_name}`), `${f.name}'s domain in:\n${stdout}`);
  }
});

test("serverless invoke calls both public functions over HTTPS, certificate checked, and they see their variables and secrets", async () => {
  const node = invoked(await sls("functions", ["invoke", "--function", "hello-node"]));
  assert.deepEqual(node, {
    runtime: "node",
    version: "v1",
    ns_var: "namespace value",
    fn_var: "node value",
    ns_secret: "namespace secret",
    fn_secret: "node secret v1",
    name: "hello-node",
  });
  const python = invoked(await sls("functions", ["invoke", "--function", "hello-python"]));
  assert.deepEqual(python, {
    runtime: "python",
    ns_var: "overridden by the function",
    fn_var: "python value",
    ns_secret: "namespace secret",
    name: "hello-python",
  });
  // invoke sends no token: the private function refuses it (the plugin exits 0 regardless).
  const guarded = await sls("functions", ["invoke", "--function", "guarded"]);
  assert.match(guarded.stderr, /status code 404/, guarded.output);
  assert.doesNotMatch(guarded.stdout, /guarded answer/);
});

test("serverless jwt prints tokens that open the private function through the front and the router", async () => {
  const tokens = jwtTokens((await sls("functions", ["jwt"])).output, "sls5-functions");

  const url = state.endpoints.guarded;
  const refused = await fetch(url);
  assert.equal(refused.status, 404, await refused.text());
  await assertTokensOpen(url, tokens);
});

test("the schedule fires, and serverless logs prints what each function logged, oldest first", async () => {
  const id = state.functions["hello-node"].id;
  const cron = 'hello-node v1 called: POST body={"from":"cron"}';
  const get = "hello-node v1 called: GET";
  // The API answers newest first, as the plugin expects (it prints the page reversed).
  const newestFirst = await eventually(
    "a cron call in hello-node's logs",
    async () => {
      const lines = (await apiCall(functionsApi, `/functions/${id}/logs`)).body.logs.map((line) => line.message);
      return lines.some((line) => line.includes(cron)) && lines;
    },
    90,
  );
  const { output } = await sls("functions", ["logs", "--function", "hello-node"]);
  const [printedGet, printedCron] = [get, cron].map((text) => output.indexOf(text));
  assert.ok(printedGet >= 0 && printedCron >= 0, output);
  const [apiGet, apiCron] = [get, cron].map((text) => newestFirst.findIndex((line) => line.includes(text)));
  assert.equal(
    printedGet < printedCron,
    apiCron < apiGet,
    `the plugin prints the API's newest-first page reversed:\n${output}\nthe API, newest first:\n${newestFirst.join("\n")}`,
  );
  const python = await sls("functions", ["logs", "--function", "hello-python"]);
  assert.match(python.output, /hello-python called: GET/);
});

test("serverless deploy of the containers service runs the tenant's pushed image, after logging in to the tenant's Docker daemon", async () => {
  // The service's namespace, made beforehand through the API so that the tenant could push
  // the image to its repository (as `docker push` would): the plugin finds it by name and
  // deploys into it. An image of the installation's registry runs only in the namespace whose
  // repository holds it.
  const made = await apiCall(containersApi, "/namespaces", "POST", { name: "sls5-containers", project_id: project });
  assert.equal(made.status, 200, JSON.stringify(made.body));
  state.images = await eventually(
    "the service's namespace ready",
    async () => {
      const { body } = await apiCall(containersApi, `/namespaces/${made.body.id}`);
      return body.status === "ready" && body;
    },
    60,
  );
  state.image = execFileSync("python3", [push, state.images.registry_endpoint, "box"], { encoding: "utf8" }).trim();

  const env = { DOCKER_HOST: dockerHost, SLS5_BOX_IMAGE: state.image };
  const { output } = await sls("containers", ["deploy"], env);
  state.containerEndpoints = endpointsOf(output, "Container");
  assert.deepEqual(Object.keys(state.containerEndpoints), ["box"], output);
  assert.ok(state.containerEndpoints.box.startsWith(`${front}/`), output);
  const login = docker.requests.find((request) => request.path.endsWith("/auth"));
  assert.ok(login, JSON.stringify(docker.requests));
  assert.deepEqual(JSON.parse(login.body), {
    "rg.fr-par.scw.cloud": { username: "any", password: process.env.SCW_SECRET_KEY },
  });
  assert.deepEqual(
    docker.requests.filter((request) => !request.path.endsWith("/auth")),
    [],
    "nothing is built or pushed for a registryImage",
  );

  const namespaces = (await apiCall(containersApi, `/namespaces?name=sls5-containers&project_id=${project}`)).body.namespaces;
  assert.equal(namespaces.length, 1);
  state.containerNamespace = namespaces[0];
  assert.deepEqual(state.containerNamespace.environment_variables, { NS_VAR: "namespace value" });
  const containers = (await apiCall(containersApi, `/namespaces/${state.containerNamespace.id}/containers`)).body.containers;
  assert.equal(containers.length, 1);
  state.box = containers[0];
  assert.equal(state.box.status, "ready", state.box.error_message);
  assert.equal(state.box.registry_image, state.image);
  assert.equal(state.box.port, 8080);
  assert.deepEqual(state.box.environment_variables, { GREETING: "hello from the box" });
  hashedSecrets(state.box.secret_environment_variables, ["SECRET"]);
});

test("serverless info, invoke and logs of the container", async () => {
  const info = await sls("containers", ["info"], { SLS5_BOX_IMAGE: state.image });
  assert.match(info.stdout, /Stack Outputs:\n\s+containers:\n\s+box:/, info.stdout);
  assert.ok(info.stdout.includes(`id: ${state.box.id}`), info.stdout);

  const answer = invoked(
    await sls("containers", ["invoke", "--function", "box"], { SLS5_BOX_IMAGE: state.image }),
  );
  assert.deepEqual(answer, { command: "/server", greeting: "hello from the box", secret: "box secret" });

  await eventually(
    "the container's log of the call",
    async () => {
      const lines = (await apiCall(containersApi, `/containers/${state.box.id}/logs`)).body.logs;
      return lines.some((line) => line.message.includes("box called: GET /"));
    },
    15,
  );
  const logs = await sls("containers", ["logs", "--function", "box"], { SLS5_BOX_IMAGE: state.image });
  assert.match(logs.output, /box called: GET \//);
});

test("serverless remove of the containers service leaves its namespace and container gone", async () => {
  await sls("containers", ["remove"], { SLS5_BOX_IMAGE: state.image });
  assert.deepEqual((await apiCall(containersApi, `/namespaces?name=sls5-containers&project_id=${project}`)).body.namespaces, []);
  assert.equal((await apiCall(containersApi, `/namespaces/${state.containerNamespace.id}`)).status, 404);
  assert.equal((await apiCall(containersApi, `/containers/${state.box.id}`)).status, 404);
  const response = await fetch(state.containerEndpoints.box);
  assert.equal(response.status, 404, `the container still answers at ${state.containerEndpoints.box}`);
  // With it, the images pushed to its repository.
  assert.equal(state.images.id, state.containerNamespace.id);
});

test("a second serverless deploy after a code change and a new secret serves the new code", async () => {
  const handler = join(dir, "functions", "handler.js");
  writeFileSync(handler, readFileSync(handler, "utf8").replace('const VERSION = "v1";', 'const VERSION = "v2";'));
  const { output } = await sls("functions", ["deploy"], { SLS5_FN_SECRET: "node secret v2" });
  assert.deepEqual(endpointsOf(output, "Function"), state.endpoints, "the endpoints do not change on a redeploy");
  const answer = invoked(await sls("functions", ["invoke", "--function", "hello-node"]));
  assert.equal(answer.version, "v2");
  assert.equal(answer.fn_secret, "node secret v2");
  assert.equal(answer.ns_secret, "namespace secret");
  assert.deepEqual(await getJson(state.endpoints["hello-node"]), answer);
  const namespaces = (await apiCall(functionsApi, `/namespaces?name=sls5-functions&project_id=${project}`)).body.namespaces;
  assert.deepEqual(
    namespaces.map((n) => n.id),
    [state.namespace.id],
    "the redeploy reuses the namespace",
  );
  const functions = (await apiCall(functionsApi, `/namespaces/${state.namespace.id}/functions`)).body.functions;
  assert.deepEqual(functions.map((f) => f.id).sort(), Object.values(state.functions).map((f) => f.id).sort());
  // The plugin deletes the old cron and creates a new one, without waiting for either.
  await eventually(
    "one cron on hello-node",
    async () => {
      const crons = (await apiCall(functionsApi, `/crons?function_id=${state.functions["hello-node"].id}`)).body.crons;
      return crons.length === 1;
    },
    10,
  );
});

test("serverless remove leaves the namespace and everything in it gone", async () => {
  await sls("functions", ["remove"]);
  assert.deepEqual((await apiCall(functionsApi, `/namespaces?name=sls5-functions&project_id=${project}`)).body.namespaces, []);
  assert.equal((await apiCall(functionsApi, `/namespaces/${state.namespace.id}`)).status, 404);
  for (const f of Object.values(state.functions)) {
    assert.equal((await apiCall(functionsApi, `/functions/${f.id}`)).status, 404, f.name);
    assert.equal((await apiCall(functionsApi, `/functions/${f.id}/logs`)).status, 404, f.name);
  }
  for (const [name, url] of Object.entries(state.endpoints)) {
    const response = await fetch(url);
    assert.equal(response.status, 404, `${name} still answers at ${url}`);
  }
});
