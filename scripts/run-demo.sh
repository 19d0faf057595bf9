#!/usr/bin/env bash
# Builds Hepaview (release) and opens it on the built-in demo study.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cargo
  else
    echo "cargo is missing: install Rust (rustup) or run as root" >&2
    exit 1
  fi
fi
exec cargo run --release --locked -- "$@"
