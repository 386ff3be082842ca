#!/usr/bin/env node
// Start-up cost of `dist/pgtwin-migrate meta-data` (target: ≤ 100 ms median),
// beside bare `node -e 0`, as wall time from spawn to exit measured here.
import { spawnSync } from 'node:child_process';

const runs = Number(process.env.RUNS ?? 40);
const cases = [
  ['dist/pgtwin-migrate meta-data', 'dist/pgtwin-migrate', ['meta-data']],
  ['node -e 0', process.execPath, ['-e', '0']],
  ['dist/pgtwin-migrate --version (loads yargs)', 'dist/pgtwin-migrate', ['--version']],
];

function measure(file, args) {
  const times = [];
  for (let i = 0; i < runs + 3; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(file, args, { stdio: ['ignore', 'ignore', 'inherit'], env: {} });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.status}`);
    if (i >= 3) times.push(ms); // first runs warm the page cache
  }
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  return { median: q(0.5), p10: q(0.1), p90: q(0.9) };
}

console.log(`wall time from spawn to exit, ${runs} runs each`);
for (const [label, file, args] of cases) {
  const { median, p10, p90 } = measure(file, args);
  console.log(`${label.padEnd(46)} median ${median.toFixed(1)} ms  (p10 ${p10.toFixed(1)}, p90 ${p90.toFixed(1)})`);
}
