#!/usr/bin/env bash
# The README's test command: builds the packages (the smoke tests import the
# built dist), then runs every vitest project once and prints a one-line
# summary ("tests: N passed, N failed, N skipped").
set -uo pipefail
cd "$(dirname "$0")/.."
tsc -b tsconfig.build.json || exit 1
node scripts/doctests.ts || exit 1
mkdir -p build
report=build/vitest-report.json
rm -f "$report"
vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
status=$?
if [ -f "$report" ]; then
  node -e '
    const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"))
    const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0)
    for (const file of r.testResults ?? []) {
      if (file.status === "failed" && (file.assertionResults ?? []).every((a) => a.status !== "failed")) {
        console.log(`FAILED FILE ${file.name}: ${String(file.message ?? "").slice(0, 2000)}`)
      }
      for (const a of file.assertionResults ?? []) {
        if (a.status === "failed") console.log(`FAILED ${file.name} > ${a.fullName}: ${(a.failureMessages ?? []).join("\n").slice(0, 2000)}`)
      }
    }
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`)
  ' "$report"
fi
exit $status
