#!/usr/bin/env bash
# Builds Hepaview (release) and opens it on the built-in demo study.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/rust-toolchain.sh
# The window needs X11/Wayland client libraries (loaded at run time by winit) and a Vulkan
# driver; Mesa lavapipe renders on the CPU where there is no GPU.
libs=(libx11-6 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0 libwayland-client0 libegl1 mesa-vulkan-drivers)
missing=()
for p in "${libs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
exec cargo run --release --locked -- "$@"
