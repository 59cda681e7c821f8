#!/usr/bin/env bash
# Builds the host and the components, then runs every test: unit tests, the end-to-end
# suite (built .wasm served by the real host over HTTP) on both stores, SQLite and
# PostgreSQL, the same suite with real Spin as the host, and Spin's conformance subset.
set -euo pipefail
cd "$(dirname "$0")/.."

# The pinned toolchain and the wasm32-wasip2 target (a no-op when present).
rustup toolchain install

# The PostgreSQL pass needs the server binaries (the tests run their own throwaway cluster
# with initdb and pg_ctl, test-support/src/postgres.rs): Debian's package when missing.
if [ -z "${BERTH_PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  && ! command -v initdb >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi

# The portal's browser tests (tests/portal.rs) drive Debian's Chromium with Playwright
# (node, from portal/node_modules); the portal's build (`berth build`) needs npm. A CJK font
# makes the screenshots of the Chinese labels readable.
# Only what is missing: Debian's npm conflicts with a Node.js installed from elsewhere
# (NodeSource's nodejs ships its own npm).
missing_portal_tools=""
command -v chromium >/dev/null 2>&1 || missing_portal_tools="$missing_portal_tools chromium"
command -v npm >/dev/null 2>&1 || missing_portal_tools="$missing_portal_tools nodejs npm"
[ -d /usr/share/fonts/truetype/wqy ] || missing_portal_tools="$missing_portal_tools fonts-wqy-zenhei"
if [ -n "$missing_portal_tools" ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing_portal_tools >/dev/null
fi
if [ ! -d portal/node_modules ]; then
  (cd portal && npm ci --no-audit --no-fund)
fi

# Real builds (tests/runner.rs): buildah, skopeo, the CNCF registry and a static busybox
# (the offline base image), Python with pip (the Python base) from Debian when missing.
missing_build_tools=""
for t in buildah skopeo docker-registry; do
  command -v "$t" >/dev/null 2>&1 || missing_build_tools="$missing_build_tools $t"
done
[ -x /bin/busybox ] || missing_build_tools="$missing_build_tools busybox-static"
# Python and pip for the offline Python base image (packages builds).
/usr/bin/python3 -c 'import pip' 2>/dev/null || missing_build_tools="$missing_build_tools python3-pip"
if [ -n "$missing_build_tools" ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing_build_tools >/dev/null
fi

# One host build, in the release profile only: wasmtime is slow to compile.
cargo build --release --locked
target/release/berth build

# Unit tests, and the end-to-end suite on SQLite (plus the tests that always use
# PostgreSQL: replicas, the PostgreSQL store and the benchmark's smoke run on both stores).
cargo test --release --locked

# deploy/'s SpinKube manifests against spin-operator's CRD schema (a package of its own, so
# its dependencies' features do not change the host's build).
cargo test --release --locked -p berth-deploy-check

# The end-to-end suite again, every app on a fresh PostgreSQL database (replicas and the
# benchmark's smoke run, which serve both stores themselves, ran above).
BERTH_TEST_STORE=postgres cargo test --release --locked -p berth-tests -- --skip replicas_ --skip bench_

# The end-to-end suite once more with real Spin as the host (`spin up` on spin.toml, the same
# .wasm files; tests/support/spin.rs), on SQLite. Tests of what only berth's host has print
# `skipped on Spin: ...`. Spin comes from ../shared/spin when it is not installed.
if ! command -v spin >/dev/null 2>&1 && [ -x ../shared/spin/install.sh ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo ../shared/spin/install.sh
fi
if command -v spin >/dev/null 2>&1; then
  BERTH_TEST_HOST=spin cargo test --release --locked -p berth-tests
elif [ -n "${CI:-}" ]; then
  echo "CI is set and spin is missing (../shared/spin/install.sh installs it)" >&2
  exit 1
else
  echo "note: spin not found; the end-to-end pass on Spin skipped"
fi

if [ -d ../shared/spin-conformance ]; then
  python3 ../shared/spin-conformance/run.py target/release/berth
else
  echo "note: ../shared/spin-conformance not found; Spin conformance suite skipped"
fi
