# Sourced by run-demo.sh and test.sh: makes sure a Rust toolchain new enough for
# Cargo.toml's rust-version (1.95) is on PATH. Debian's own `cargo` package is far older
# (rustc 1.63 in bookworm) and cannot build this crate, so it is never used: rustup's stable
# toolchain is, installed from Debian's `rustup` package when missing.
need_rust="1.95"
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
rust_ok() {
  command -v rustc >/dev/null 2>&1 || return 1
  local v
  v="$(rustc --version | awk '{print $2}')"
  [ "$(printf '%s\n%s\n' "$need_rust" "$v" | sort -V | head -n1)" = "$need_rust" ]
}
if ! rust_ok; then
  if [ "$(id -u)" = 0 ] && ! command -v rustup >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustup || true
  fi
  if command -v rustup >/dev/null 2>&1; then
    rustup toolchain install stable --profile minimal -c rustfmt,clippy >/dev/null && rustup default stable >/dev/null || true
  fi
  if ! rust_ok; then
    echo "Hepaview needs Rust $need_rust or newer (found: $(rustc --version 2>/dev/null || echo none))." >&2
    echo "Install it with:  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"\$HOME/.cargo/env\"" >&2
    exit 1
  fi
fi
