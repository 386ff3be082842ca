#!/usr/bin/env node
// Makes the single executable dist/pgtwin-migrate from dist/pgtwin-migrate.cjs.
//
// 1. @yao-pkg/pkg's SEA builder, given this machine's own Node binary
//    (useLocalNode): its command line always downloads a base binary, which
//    fails offline, but the builder itself works with a local one.
// 2. Should that fail, Node's own SEA route by hand: --experimental-sea-config,
//    a copy of the host node binary, postject.
import { existsSync, mkdirSync, rmSync, writeFileSync, copyFileSync, chmodSync, statSync, renameSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const require = createRequire(import.meta.url);
const entry = resolve('dist/pgtwin-migrate.cjs');
// Built beside the final name and renamed into place, so a running test
// never finds the executable half written.
const final = resolve('dist/pgtwin-migrate');
const output = resolve('dist/pgtwin-migrate.new');
const seaConfig = { disableExperimentalSEAWarning: true, useCodeCache: true, useSnapshot: false };
const fuse = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

if (!existsSync(entry)) throw new Error(`${entry} missing: run make build first`);
rmSync(output, { force: true });

// The executable must answer meta-data: a bare copy of node would not.
function assertWorks() {
  const out = execFileSync(output, ['meta-data'], { encoding: 'utf8', env: {} });
  if (!out.startsWith('<?xml')) throw new Error('the executable does not answer meta-data');
}

async function withPkg() {
  const sea = require('@yao-pkg/pkg/lib-es5/sea.js').default;
  // pkg works in a temporary directory and injects with `npx postject`; a
  // temporary directory inside this project lets npx find our postject
  // instead of trying to download one.
  const tmp = resolve('dist/.pkg-tmp');
  mkdirSync(tmp, { recursive: true });
  process.env.TMPDIR = tmp;
  const major = process.versions.node.split('.')[0];
  await sea(entry, {
    useLocalNode: true,
    targets: [{ nodeRange: `node${major}`, platform: 'linux', arch: process.arch, output }],
    seaConfig,
  });
  rmSync(tmp, { recursive: true, force: true });
  if (!existsSync(output)) throw new Error('pkg reported success but wrote no executable');
  assertWorks();
}

function withNodeSea() {
  const blob = resolve('dist/sea-prep.blob');
  writeFileSync('dist/sea-config.json', JSON.stringify({ main: entry, output: blob, ...seaConfig }));
  execFileSync(process.execPath, ['--experimental-sea-config', 'dist/sea-config.json'], { stdio: 'inherit' });
  copyFileSync(process.execPath, output);
  execFileSync(process.execPath, [require.resolve('postject/dist/cli.js'), output, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', fuse], {
    stdio: 'inherit',
  });
  rmSync(blob, { force: true });
  rmSync('dist/sea-config.json', { force: true });
  assertWorks();
}

let how;
try {
  await withPkg();
  how = '@yao-pkg/pkg (SEA, local Node binary)';
} catch (err) {
  console.warn(`pkg could not build (${String(err).split('\n')[0]}); using Node SEA + postject`);
  withNodeSea();
  how = 'Node SEA + postject';
}
chmodSync(output, 0o755);
renameSync(output, final);
const size = (statSync(final).size / 1048576).toFixed(1);
console.log(`dist/pgtwin-migrate: ${size} MiB, built with ${how}`);
