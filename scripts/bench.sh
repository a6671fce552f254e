#!/usr/bin/env bash
# Runs a `reelflow-bench …` with the real services it compares against,
# e.g. `scripts/bench.sh log`, `scripts/bench.sh api`, `scripts/bench.sh transcode`,
# `scripts/bench.sh upload`, `scripts/bench.sh hls`, `scripts/bench.sh scale`, `scripts/bench.sh sql`,
# `scripts/bench.sh state`
# or `scripts/bench.sh log --json`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
cd "$(dirname "$HERE")"

install_build_deps
# The peers some benches run beside: wrk drives HTTP, nginx serves files.
apt_install wrk nginx
cargo build --release --locked --bin reelflow --bin reelflow-bench
trap '"$HERE/services.sh" stop' EXIT
"$HERE/services.sh" start
eval "$("$HERE/services.sh" env)"
export REELFLOW_BENCH_KAFKA="$REELFLOW_TEST_KAFKA"
export REELFLOW_BENCH_POSTGRES="$REELFLOW_TEST_DATABASE_URL"
"$CARGO_TARGET_DIR/release/reelflow-bench" "$@"
