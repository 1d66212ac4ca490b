#!/usr/bin/env bash
# Run every fuzz target for SECONDS each (default 60) from its committed seeds (fuzz/seeds/TARGET;
# what it finds goes to the uncommitted fuzz/corpus/TARGET), and print a table line
# per target: target, seconds, executions, crashes (artifacts under fuzz/artifacts/TARGET/).
#   fuzz/run.sh 600            # every target
#   fuzz/run.sh 600 cdr mcap   # only these
# Needs cargo-fuzz (`cargo install cargo-fuzz`). hdpf's only toolchain is stable Rust, so the
# targets are built without a sanitizer (`-s none`: libFuzzer's coverage guidance, Rust's own
# bounds and overflow checks via debug assertions) and RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass the
# unstable flags it uses.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hdpf/fuzz-target}"
targets="${*:-$(cargo fuzz list)}"
cargo fuzz build -s none --debug-assertions
printf '| target | seconds | executions | crashes |\n|---|---|---|---|\n'
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
  log="artifacts/$t/last-run.log"
  set +e
  cargo fuzz run -s none --debug-assertions "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  crashes=$(find "artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
  printf '| %s | %s | %s | %s |\n' "$t" "$SECONDS_EACH" "$execs" "$crashes"
done
