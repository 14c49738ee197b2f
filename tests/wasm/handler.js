// The component tests/tests/wasm.rs deploys: one handler whose behaviour the path chooses.
// Built into a wasi:http/proxy component by build.sh (componentize-js).
import { getEnvironment } from 'wasi:cli/environment@0.2.10';
import { exit } from 'wasi:cli/exit@0.2.10';

// Zero in every fresh instance: an instance that served a request before would count on.
let served = 0;

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  served += 1;
  const url = new URL(request.url);
  switch (url.pathname) {
    case '/spin':
      // Never answers: the timeout must stop it.
      for (;;) {}
    case '/grow': {
      // Keeps `mb` MiB alive at once.
      const blocks = [];
      for (let i = 0; i < Number(url.searchParams.get('mb')); i++) {
        const block = new Uint8Array(1 << 20);
        block.fill(i & 0xff);
        blocks.push(block);
      }
      return new Response(`grew ${blocks.length} MiB`);
    }
    case '/trap':
      // The instance aborts without answering (an uncaught error would not do: StarlingMonkey
      // answers it with an empty 500 of its own).
      console.error('the handler failed on purpose');
      exit({ tag: 'err' });
      return new Response('not reached');
    case '/egress':
      try {
        const answer = await fetch(url.searchParams.get('url'));
        return new Response(`reached: ${answer.status}`);
      } catch (error) {
        return new Response(`refused: ${error}`, { status: 502 });
      }
    case '/print':
      console.log(`stdout line ${url.searchParams.get('mark')}`);
      console.error(`stderr line ${url.searchParams.get('mark')}`);
      return new Response('printed');
  }
  const environment = Object.fromEntries(getEnvironment());
  const answer = {
    method: request.method,
    path: url.pathname,
    query: url.searchParams.get('name'),
    header: request.headers.get('x-greeting'),
    body: await request.text(),
    served,
    greeting: environment.GREETING ?? null,
    secret: environment.SECRET_WORD ?? null,
  };
  return new Response(JSON.stringify(answer), {
    status: Number(url.searchParams.get('status') ?? 200),
    headers: { 'content-type': 'application/json', 'x-served': String(served) },
  });
}
