#!/usr/bin/env bash
# Runs every test of Reelflow against real services, from a fresh Debian
# machine with Rust, Java/Maven and Go: installs what is missing, starts
# Kafka, PostgreSQL and the S3 server (scripts/services.sh), checks
# formatting and lints, runs the whole test suite, and stops the services.
# On failure the services' logs are printed and kept.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
cd "$ROOT"

install_build_deps
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy

command -v node >/dev/null || apt_install nodejs npm
# Debian's Chromium plays the player page in the browser test; the real
# psql client talks to the SQL wire protocol; openssl makes the certificate
# of the TLS test.
apt_install chromium postgresql-client openssl
say "installing the JavaScript clients the tests drive (npm ci)"
npm ci --prefix serve/tests/js --no-audit --no-fund --loglevel=error
# kustomize and kubernetes-validate check the Kubernetes manifests.
"$HERE/k8s.sh" install
eval "$("$HERE/k8s.sh" env)"

say "checking formatting"
cargo fmt --all -- --check

say "starting services"
trap '"$HERE/services.sh" stop' EXIT
if ! "$HERE/services.sh" start; then
  "$HERE/services.sh" logs || true
  exit 1
fi
eval "$("$HERE/services.sh" env)"

say "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "running the tests"
log="$(mktemp)"
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?
if [ "$status" -ne 0 ]; then
  "$HERE/services.sh" logs || true
  echo "services' state and logs kept in ${REELFLOW_SERVICES_DIR:-/tmp/reelflow-services-$(id -u)}" >&2
fi
# One closing line for the whole run (cargo's own last line is a doc-test
# binary's, which says little).
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"
echo
echo "tests: $passed passed, $failed failed"
exit "$status"
