#!/usr/bin/env bash
# forge cannot download a native solc here; this stands in for one: it reports the solc-js
# version for `--version` and otherwise compiles standard JSON from stdin with solc-js.
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ "${1:-}" == "--version" ]]; then
  echo "solc, the solidity compiler commandline interface"
  echo "Version: 0.8.28+commit.7893614a.Linux.g++"
  exit 0
fi
exec node "$DIR/solc-stdin.cjs"
