#!/usr/bin/env bash
# `npm run check`: type-checks every project (packages, tests, examples,
# benchmarks, scripts), then lints and checks formatting. Fails on any error.
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/doctests.ts
echo "check: tsc -b (all projects)"
tsc -b tsconfig.json
echo "check: biome ci (lint + format)"
biome ci --error-on-warnings .
echo "check: ok"
