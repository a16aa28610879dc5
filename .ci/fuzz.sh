#!/usr/bin/env bash
# Fuzzes every parser of the library that reads a client's bytes, for a
# bounded time per target (FUZZ_SECONDS, 20 by default), with cargo-fuzz on the
# nightly toolchain. A crash fails the run and leaves its input under
# crates/verdict/fuzz/artifacts/. Prints how many runs each target made.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${FUZZ_SECONDS:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi
cd crates/verdict
cargo +nightly fuzz build
for target in $(cargo +nightly fuzz list); do
  log=$(mktemp)
  if ! cargo +nightly fuzz run "$target" -- -max_total_time="$SECONDS_PER_TARGET" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $target found a crash (input under crates/verdict/fuzz/artifacts/$target)"
    exit 1
  fi
  echo "$target: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1)"
  rm -f "$log"
done
