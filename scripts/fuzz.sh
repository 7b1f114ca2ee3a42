#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time: `scripts/fuzz.sh [SECONDS]` (default 60 per
# target). Not part of scripts/test.sh (CI's time budget); see docs/security.md.
#
# libFuzzer's instrumentation (-Zsanitizer, -Cpasses=sancov) takes a nightly compiler. A
# nightly toolchain is used when rustup has one; otherwise the stable one is told to accept
# the nightly flags (RUSTC_BOOTSTRAP=1), which works for cargo-fuzz's defaults. Crashes are
# kept in fuzz/artifacts/TARGET/, the corpus in fuzz/corpus/TARGET/ (both ignored by git).
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS per target]" >&2
    exit 2
fi
cd "$(dirname "$0")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    echo "fuzz.sh: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
fi

# -s none: no AddressSanitizer. The code under test is safe Rust (unsafe_code is forbidden in
# the workspace), so ASan adds cost, not findings; panics and arithmetic overflows (debug
# assertions are on) are what the targets catch.
targets=$(cargo "${toolchain[@]}" fuzz list)
failed=()
for target in $targets; do
    echo "fuzz.sh: $target for ${seconds}s" >&2
    if ! cargo "${toolchain[@]}" fuzz run -s none --debug-assertions "$target" -- \
        -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: $(echo "$targets" | wc -w) targets ran ${seconds}s each without a crash" >&2
