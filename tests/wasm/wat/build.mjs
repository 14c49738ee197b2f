// Builds a core module written by hand in WebAssembly text against the canonical ABI into a
// wasi:http/proxy component, with jco (pinned in ../package-lock.json): the text is parsed,
// the world `handler` of ../wit (with the WASI packages jco carries, named 0.2.10 as build.sh
// names them) is embedded, and the module is made a component; jco checks every import and
// export against the world on the way.
// Usage: node tests/wasm/wat/build.mjs IN.wat OUT.wasm   (after `npm ci` in tests/wasm)
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [source, out] = process.argv.slice(2);
if (!source || !out) {
  console.error('usage: node build.mjs IN.wat OUT.wasm');
  process.exit(2);
}
const here = dirname(dirname(fileURLToPath(import.meta.url)));
// One WIT source: the world, then each WASI package nested in it (`package x { ... }`).
const builtin = join(here, 'node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12');
const packages = readdirSync(builtin, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) =>
    readFileSync(join(builtin, entry.name, 'package.wit'), 'utf8')
      .replaceAll('@0.2.12', '@0.2.10')
      .replace(/^package ([^;]+);/m, 'package $1 {')
      .concat('\n}\n'),
  );
const witSource = [readFileSync(join(here, 'wit/world.wit'), 'utf8'), ...packages].join('\n');
const core = await parse(readFileSync(source, 'utf8'));
const embedded = await componentEmbed({ binary: core, witSource, world: 'handler' });
writeFileSync(out, await componentNew(embedded, []));
