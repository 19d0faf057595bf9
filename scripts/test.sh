#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine as root: installs the Debian tools the
# tests compare against (dcm2niix, dciodvfy from dicom3tools, admesh, Chromium for the HTML
# report), Mesa lavapipe for the GPU tests and a Rust toolchain (scripts/rust-toolchain.sh),
# then runs every test.
# ../shared (data sets and anchors) must sit beside this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v dcm2niix >/dev/null 2>&1 || need+=(dcm2niix)
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
# headless Chromium renders the HTML lesion report in a test
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# admesh checks that exported STL surfaces are closed
command -v admesh >/dev/null 2>&1 || need+=(admesh)
# Mesa lavapipe: Vulkan on the CPU, so the GPU viewer tests render without a GPU
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need+=(mesa-vulkan-drivers)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing: ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

. scripts/rust-toolchain.sh

if [ ! -d ../shared/data ]; then
  echo "warning: ../shared/data not found; tests on real data will be skipped" >&2
fi

# wgpu/winit want a private runtime dir; without one they only print warnings
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"

# CI (.ci/run) passes --lint: formatting and clippy's warnings fail the run before the tests.
if [ "${1:-}" = "--lint" ]; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
  cargo fmt --check
  cargo clippy --all-targets --locked -- -D warnings
fi

cargo test --all-targets --locked
