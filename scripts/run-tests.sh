#!/usr/bin/env bash
# Runs the whole vitest suite and ends with one summary line CI can read.
# The rig is torn down even when vitest is interrupted.
set -uo pipefail
cd "$(dirname "$0")/.."
trap 'scripts/rig.sh down >/dev/null 2>&1 || true' EXIT INT TERM
rm -f dist/test-results.json
npx vitest run "$@"
status=$?
node -e '
  const fs = require("fs");
  let r;
  try { r = JSON.parse(fs.readFileSync("dist/test-results.json", "utf8")); } catch { console.log("0 passed, 1 failed (no test report)"); process.exit(0); }
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
'
exit $status
