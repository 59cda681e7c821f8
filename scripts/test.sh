#!/usr/bin/env bash
# Builds the host and the components, then runs every test: unit tests, the end-to-end
# suite (built .wasm served by the real host over HTTP) and Spin's conformance subset.
set -euo pipefail
cd "$(dirname "$0")/.."

# The pinned toolchain and the wasm32-wasip2 target (a no-op when present).
rustup toolchain install

# One host build, in the release profile only: wasmtime is slow to compile.
cargo build --release --locked
target/release/berth build
cargo test --release --locked

if [ -d ../shared/spin-conformance ]; then
  python3 ../shared/spin-conformance/run.py target/release/berth
else
  echo "note: ../shared/spin-conformance not found; Spin conformance suite skipped"
fi
