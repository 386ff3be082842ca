#!/usr/bin/env bash
# Runs the whole vitest suite and ends with one summary line CI can read.
# Two runs: unit + integration (the single-node rig), then the cluster
# project (the multi-node rig, scripts/cluster-rig.sh) on its own, so the two
# rigs never share the machine. Both rigs are torn down even when vitest is
# interrupted.
#
#   scripts/run-tests.sh [VITEST ARGS]            everything
#   scripts/run-tests.sh --cluster [VITEST ARGS]  the cluster project only (make test-cluster)
set -uo pipefail
cd "$(dirname "$0")/.."
trap 'scripts/rig.sh down >/dev/null 2>&1 || true; scripts/rig.sh cluster down >/dev/null 2>&1 || true' EXIT INT TERM
only_cluster=
if [ "${1:-}" = --cluster ]; then
  only_cluster=1
  shift
fi
rm -f dist/test-results.json dist/test-results-cluster.json
status=0
if [ -z "$only_cluster" ]; then
  PGTWIN_TEST_REPORT=dist/test-results.json npx vitest run --project unit --project integration --passWithNoTests "$@" || status=$?
fi
# CI stops a run at 90 minutes; the cluster project alone takes about 35 on a
# 2-core machine. When the single-node part has left too little of that
# (PGTWIN_TEST_BUDGET_MIN, default 90, minus 40 for the cluster project), the
# cluster project is not started, and the summary says so in so many words.
budget=${PGTWIN_TEST_BUDGET_MIN:-90}
elapsed=$(( SECONDS / 60 ))
if [ -z "$only_cluster" ] && [ "$elapsed" -gt $(( budget - 40 )) ]; then
  echo "cluster project NOT RUN: the single-node part took $elapsed min of a $budget min budget; run make test-cluster on its own" >&2
  cluster_skipped=1
else
  PGTWIN_TEST_REPORT=dist/test-results-cluster.json npx vitest run --project cluster --passWithNoTests "$@" || status=$((status ? status : $?))
fi
[ -n "${cluster_skipped:-}" ] && echo "cluster project NOT RUN (time budget); see above"
node -e '
  const fs = require("fs");
  const files = process.argv.slice(1);
  let passed = 0, failed = 0, skipped = 0, missing = 0;
  for (const f of files) {
    let r;
    try { r = JSON.parse(fs.readFileSync(f, "utf8")); } catch { missing++; continue; }
    passed += r.numPassedTests; failed += r.numFailedTests;
    // Name every failure here, at the end, where a CI log that keeps only
    // its tail still shows it.
    for (const t of r.testResults ?? []) {
      const file = String(t.name).replace(process.cwd() + "/", "");
      const bad = (t.assertionResults ?? []).filter((a) => a.status === "failed");
      if (t.status === "failed" && bad.length === 0) console.log(`FAILED ${file}: ${String(t.message ?? "").split("\n")[0].slice(0, 300)}`);
      for (const a of bad) console.log(`FAILED ${file} > ${a.fullName}: ${String((a.failureMessages ?? [])[0] ?? "").split("\n")[0].slice(0, 300)}`);
    }
    skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  }
  console.log(`${passed} passed, ${failed + missing} failed, ${skipped} skipped${missing ? ` (${missing} run(s) left no test report)` : ""}`);
' $([ -z "$only_cluster" ] && echo dist/test-results.json) $([ -z "${cluster_skipped:-}" ] && echo dist/test-results-cluster.json)
exit $status
