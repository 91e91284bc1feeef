# mpcore: Python's multiprocessing, rebuilt in Rust, and the lessons that teach it.
# Every recipe is plain cargo underneath (see README.md); CI calls cargo directly.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes (what `just` alone does)
_default:
    @just --list --unsorted

# Run a lesson: `just lesson create`; arguments go to it: `just lesson join --sequential`
[group('learn')]
[positional-arguments]
lesson NAME *ARGS:
    @cargo lesson "$1" -- "${@:2}"

# Run a lesson under a start method (fork, spawn, forkserver): `just lesson-with spawn create`
[group('learn')]
[positional-arguments]
lesson-with METHOD NAME *ARGS:
    @MPCORE_START_METHOD="$1" cargo lesson "$2" -- "${@:3}"

# List the lessons in teaching order, each with what it shows
[group('learn')]
lessons:
    @awk '/^name *=/ { n = $0; sub(/^name *= *"/, "", n); sub(/".*$/, "", n) } \
        /^summary *=/ { s = $0; sub(/^summary *= *"/, "", s); sub(/" *(#.*)?$/, "", s); \
        gsub(/\\"/, "\"", s); printf "%-20s %s\n", n, s }' lessons/lessons.toml

# Build the book (docs/book/index.html), installing mdbook first if it is missing
[group('learn')]
docs:
    command -v mdbook >/dev/null || cargo install mdbook --locked
    mdbook build docs
    @echo "open docs/book/index.html"

# Serve the book on http://localhost:3000, rebuilding it as files change
[group('learn')]
docs-serve:
    command -v mdbook >/dev/null || cargo install mdbook --locked
    mdbook serve docs

# Run every test: mpcore's, and every lesson against its snapshot and Python reference
[group('check')]
test:
    cargo test --workspace

# Check formatting and lints exactly as CI does
[group('check')]
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Run what CI runs: formatting, lints, every test, the API docs
[group('check')]
ci:
    bash .ci/run

# Review changed snapshots one by one, then regenerate the book's output regions
[group('dev')]
review:
    @cargo insta --version >/dev/null 2>&1 || { echo "just review needs cargo-insta: cargo install cargo-insta --locked" >&2; exit 1; }
    cargo insta review
    cargo run -q -p harness --bin bless

# Accept what the lessons print now: rewrite the snapshots and the book's output regions together
[group('dev')]
bless:
    #!/usr/bin/env bash
    set -uo pipefail
    rm -f harness/tests/snapshots/*.snap.new
    INSTA_UPDATE=always cargo test -p harness -- --skip docs_are_fresh
    status=$?
    cargo run -q -p harness --bin bless || status=1
    git status --short -- harness/tests/snapshots docs/src || true
    if [ "$status" -ne 0 ]; then echo "some lesson tests failed: their snapshots were not rewritten" >&2; fi
    exit "$status"

# Benchmark mpcore against CPython and raw system calls, and print one table
[group('dev')]
bench:
    python3 mpcore/benches/report.py
