# Sourced by the scripts in this folder: repo root, sudo, cargo on PATH, package list.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT" || exit 1

# Empty when we are root; "sudo" otherwise.
# shellcheck disable=SC2034 # used by the scripts that source this file
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

# rustup puts cargo in ~/.cargo/bin, which a non-login shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

# The Debian packages, from scripts/apt-packages.txt (comments and blank lines dropped).
apt_packages() {
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$REPO_ROOT/scripts/apt-packages.txt"
}

log() { printf '==> %s\n' "$*" >&2; }
