#!/bin/sh
# Build a fuzz target with libFuzzer on STABLE Rust and run it.
#
#   native/fuzz/run.sh TARGET SECONDS
#
# cargo-fuzz needs nightly only for its sanitizer flags (-Zsanitizer); the
# coverage instrumentation libFuzzer feeds on is rustc's stable
# `-C passes=sancov-module` plus LLVM's sanitizer-coverage options, and
# libfuzzer-sys compiles libFuzzer itself from its C++ sources. So this is
# real coverage-guided fuzzing with the same engine and flags cargo-fuzz
# uses, minus AddressSanitizer, which safe Rust (everything but the PyO3
# glue, which no fuzz target links) does not need: out-of-bounds accesses and
# overflows panic (debug assertions and overflow checks are on), and a panic
# is a crash.
#
# The committed seeds (fuzz/seeds/TARGET) are read, never written; what the
# fuzzer learns goes to target/fuzz/corpus/TARGET (kept between runs), and a
# crashing input to target/fuzz/artifacts/TARGET/ (replay: the binary with the
# artifact as its argument). With FUZZ_LOG set, the output goes to that file
# and only a summary is printed.
set -eu
target=$1
seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
native=$(dirname "$here")
host=$(rustc -vV | sed -n 's/^host: //p')
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags="$flags -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags="$flags -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth"
flags="$flags --cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cpanic=abort"
# --target keeps these flags off build scripts; its own target dir keeps them
# from invalidating the normal build.
RUSTFLAGS="$flags" cargo build --quiet --release --manifest-path "$here/Cargo.toml" \
    --target "$host" --target-dir "$native/target/fuzz" --bin "$target"
binary="$native/target/fuzz/$host/release/$target"
corpus="$native/target/fuzz/corpus/$target"
artifacts="$native/target/fuzz/artifacts/$target"
mkdir -p "$corpus" "$artifacts"
echo "fuzz $target: ${seconds}s (seeds: native/fuzz/seeds/$target, corpus: $corpus)"
set -- "$binary" "$corpus" "$here/seeds/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$artifacts/"
if [ -z "${FUZZ_LOG:-}" ]; then
    exec "$@"
fi
# Quiet mode (make test): the whole output to $FUZZ_LOG, a summary here, the log's end on failure.
if "$@" >"$FUZZ_LOG" 2>&1; then
    grep -E '^Done [0-9]+ runs|stat::(number_of_executed_units|new_units_added)' "$FUZZ_LOG" | sed 's/^/  /'
else
    status=$?
    tail -n 60 "$FUZZ_LOG"
    echo "fuzz $target FAILED (exit $status); full log: $FUZZ_LOG; replay: $binary <artifact>" >&2
    exit "$status"
fi
