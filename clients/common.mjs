// What the JavaScript client suites (clients/serverless, clients/serverless5, clients/js) share:
// waiting on a condition with a deadline, reading an endpoint's JSON, and the tokens of
// `serverless jwt` with the private function they open.
import assert from 'node:assert/strict';

/** Returns the answer of `GET url` as JSON, failing on anything but a 200. */
export async function getJson(url, headers = {}) {
  const response = await fetch(url, { headers });
  const text = await response.text();
  assert.equal(response.status, 200, `GET ${url}: ${response.status} ${text}`);
  return JSON.parse(text);
}

/** Returns the first truthy value of `check`, called every 0.5 s; fails naming `what` after `seconds`. */
export async function eventually(what, check, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    assert.ok(Date.now() < deadline, `${what}: not within ${seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** Returns the 404 error `fetch` (an SDK call) throws once its resource is gone, within 30 s. */
export async function gone(fetch) {
  for (let i = 0; i < 60; i += 1) {
    try {
      await fetch();
    } catch (error) {
      if (error.status === 404) return error;
      throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error('still there after 30 s');
}

/**
 * Returns the tokens `serverless jwt` printed in `output` for the namespace `namespace` and its
 * private function `guarded`; fails unless both are there, or if the public hello-node got one.
 */
export function jwtTokens(output, namespace) {
  const namespaceToken = output.match(new RegExp(`Namespace <${namespace}> token \\(valid until [^)]+\\):\\s*(\\S+)`))?.[1];
  const functionToken = output.match(/Function <guarded> token \(valid until [^)]+\):\s*(\S+)/)?.[1];
  assert.ok(namespaceToken && functionToken, output);
  assert.doesNotMatch(output, /Function <hello-node> token/, 'a token is printed only for private functions');
  return { namespaceToken, functionToken };
}

/**
 * Checks that the private function at `url` refuses `functionToken` forged (403) and answers
 * `guarded answer` to it and to `namespaceToken`.
 */
export async function assertTokensOpen(url, { namespaceToken, functionToken }) {
  const forged = await fetch(url, { headers: { SCW_FUNCTIONS_TOKEN: `${functionToken.slice(0, -4)}AAAA` } });
  assert.equal(forged.status, 403, await forged.text());
  for (const token of [functionToken, namespaceToken]) {
    const response = await fetch(url, { headers: { SCW_FUNCTIONS_TOKEN: token } });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'guarded answer');
  }
}
