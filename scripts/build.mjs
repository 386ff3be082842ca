#!/usr/bin/env node
// Bundles src/main.ts into one CommonJS file, dist/pgtwin-migrate.cjs, with
// the version stamped in. Heavy modules (pg, yargs) stay behind lazy
// initialisers so `meta-data` never evaluates them.
import { build } from 'esbuild';
import { readFileSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim();
  if (dirty) commit += '-dirty';
} catch {
  // not a git checkout: keep "unknown"
}
const stamp = `${pkg.version} (commit ${commit}, built ${new Date().toISOString().slice(0, 10)})`;

// pg decides at load time whether it runs in a Cloudflare Worker by building a
// WHATWG Response, which makes Node load its fetch implementation: about 50 ms
// of every action's start-up. This executable never runs in a Worker.
const noWorkerProbe = {
  name: 'pg-no-worker-probe',
  setup(b) {
    b.onLoad({ filter: /[\\/]pg[\\/]lib[\\/]stream\.js$/ }, async (args) => {
      const { readFile } = await import('node:fs/promises');
      const text = await readFile(args.path, 'utf8');
      const probe = "typeof Response === 'function'";
      if (!text.includes(probe)) throw new Error(`${args.path}: the Worker probe changed; review the pg-no-worker-probe plugin`);
      return { contents: text.replace(probe, 'false'), loader: 'js' };
    });
  },
};

mkdirSync('dist', { recursive: true });
await build({
  entryPoints: ['src/main.ts'],
  outfile: 'dist/pgtwin-migrate.cjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  // pg's optional native binding is never used.
  plugins: [noWorkerProbe],
  // SQL installed in the databases lives in src/pg/sql/*.sql, reviewed as SQL.
  loader: { '.sql': 'text' },
  external: ['pg-native'],
  define: {
    __PGTWIN_BUILD__: JSON.stringify(stamp),
    // yargs 18 is ESM-only and reads import.meta.url; give the bundle one.
    'import.meta.url': '__pgtwin_import_meta_url',
  },
  banner: { js: 'const __pgtwin_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: 'warning',
});
// The documentation generator (make docs), from the same parameter table.
await build({
  entryPoints: ['scripts/gen-docs.ts'],
  outfile: 'dist/gen-docs.cjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  logLevel: 'warning',
});
console.log(`dist/pgtwin-migrate.cjs: ${stamp}`);
