#!/usr/bin/env bash
# The Kubernetes tools the manifests are checked with, fetched from the
# registries and cached outside the clone:
#   - kustomize, built through the Go module proxy;
#   - kubernetes-validate (with the Kubernetes schemas), from PyPI, in a venv.
#
#   scripts/k8s.sh install    fetch both (once; later runs reuse the cache)
#   scripts/k8s.sh env        print the variables the tests read
#   scripts/k8s.sh check      render every overlay and validate it strictly
#   scripts/k8s.sh render O   print k8s/overlays/O rendered
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

KUSTOMIZE_VERSION=v5.8.1
KUBERNETES_VALIDATE_VERSION=1.37.0
KUSTOMIZE="$REELFLOW_CACHE/kustomize-$KUSTOMIZE_VERSION/kustomize"
VALIDATE_VENV="$REELFLOW_CACHE/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
VALIDATE="$VALIDATE_VENV/bin/kubernetes-validate"

install() {
  if [ ! -x "$KUSTOMIZE" ]; then
    command -v go >/dev/null || die "go not found: it builds kustomize from the Go module proxy"
    say "building kustomize $KUSTOMIZE_VERSION through the Go module proxy"
    GOTOOLCHAIN=local GOBIN="$(dirname "$KUSTOMIZE")" GOFLAGS=-mod=mod \
      go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  fi
  if [ ! -x "$VALIDATE" ]; then
    python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
    say "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI"
    rm -rf "$VALIDATE_VENV"
    python3 -m venv "$VALIDATE_VENV"
    "$VALIDATE_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
}

case "${1:-}" in
  install) install ;;
  env)
    echo "export REELFLOW_TEST_KUSTOMIZE=$KUSTOMIZE"
    echo "export REELFLOW_TEST_KUBERNETES_VALIDATE=$VALIDATE"
    ;;
  render)
    install
    "$KUSTOMIZE" build "$ROOT/k8s/overlays/${2:?usage: $0 render OVERLAY}"
    ;;
  check)
    install
    tmp="$(mktemp)"
    trap 'rm -f "$tmp"' EXIT
    for overlay in "$ROOT"/k8s/overlays/*/; do
      name="$(basename "$overlay")"
      "$KUSTOMIZE" build "$overlay" > "$tmp"
      "$VALIDATE" --strict --quiet "$tmp" || die "k8s/overlays/$name does not validate"
      say "k8s/overlays/$name: $(grep -c '^kind:' "$tmp") resources valid"
    done
    ;;
  *) echo "usage: $0 install|env|check|render OVERLAY" >&2; exit 2 ;;
esac
