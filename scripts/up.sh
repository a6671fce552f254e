#!/usr/bin/env bash
# Builds Reelflow and runs the whole platform in one process on the
# embedded default (SQLite, a local object directory, the embedded log),
# keeping its state in ./reelflow-data. Extra arguments go to `reelflow up`,
# e.g. `scripts/up.sh --listen 0.0.0.0:8080`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
cd "$(dirname "$HERE")"

install_build_deps
say "building reelflow (release)"
cargo build --release --locked --bin reelflow
exec "$CARGO_TARGET_DIR/release/reelflow" up "$@"
