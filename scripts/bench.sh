#!/usr/bin/env bash
# `npm run bench [-- --quick] [-- suite ...]`: builds, then runs the benchmark
# suites against the built packages and writes docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
tsc -b tsconfig.build.json
exec node --expose-gc test/bench/main.ts "$@"
