# Shared by the scripts: where caches live, and small helpers.
# Sourced, not run.

# Downloads and builds are cached outside the clone, keyed by version, so a
# second run (or a second clone) is quick.
REELFLOW_CACHE="${REELFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reelflow}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REELFLOW_CACHE/target}"
mkdir -p "$REELFLOW_CACHE"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs Debian packages that are not installed yet (needs root or sudo).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What building Reelflow needs: a C toolchain and cmake for librdkafka,
# OpenSSL and curl headers for its TLS support, and ffmpeg at run time.
install_build_deps() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
  apt_install build-essential cmake pkg-config libssl-dev libcurl4-openssl-dev zlib1g-dev ffmpeg
}
