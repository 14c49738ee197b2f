// What the JavaScript SDK suites (sdk.test.mjs, containers.test.mjs) share: the SDK packages of
// SCW_JS_MODULES (the cached `npm ci` of this folder) and a client of the tenant the SCW_*
// variables name, as a tenant's shell would set them.
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** Loads a package from SCW_JS_MODULES. */
export const sdkRequire = createRequire(join(process.env.SCW_JS_MODULES, 'package.json'));

/** Returns a client of the SCW_* tenant, in fr-par. */
export function scalewayClient() {
  const { createClient } = sdkRequire('@scaleway/sdk-client');
  return createClient({
    accessKey: process.env.SCW_ACCESS_KEY,
    secretKey: process.env.SCW_SECRET_KEY,
    defaultProjectId: process.env.SCW_DEFAULT_PROJECT_ID,
    defaultRegion: 'fr-par',
    apiURL: process.env.SCW_API_URL,
  });
}

/** The SDK waiters' options: poll every 1 to 2 s, for up to 2 minutes. */
export const fast = { timeout: 120, minDelay: 1, maxDelay: 2 };
