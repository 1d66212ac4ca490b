#!/usr/bin/env bash
# Regenerate the seed corpora of the `mcap` and `cdr` targets with hdpf's own writers: a 2-frame
# synthetic scene at 16×12 converted to MCAP (one file per chunk compression), and every ROS 2
# message payload in it as one `cdr` seed each (split out by make_seeds.py).
#   fuzz/make_seeds.sh [PATH/TO/hdpf]     (default: cargo run --release)
set -euo pipefail
cd "$(dirname "$0")"
HDPF=("${1:-}")
if [ -z "${HDPF[0]}" ]; then HDPF=(cargo run --release --quiet --manifest-path ../Cargo.toml --); fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${HDPF[@]}" dataset synth --out "$tmp/set" --frames 2 --width 16 --height 12 --objects box >/dev/null
mkdir -p seeds/mcap seeds/cdr
for c in none zstd lz4; do
  "${HDPF[@]}" dataset convert --from "$tmp/set/test/000001" --to "seeds/mcap/synth-$c.mcap" --compression "$c" >/dev/null
done
python3 make_seeds.py seeds/mcap/synth-none.mcap seeds/cdr
ls -l seeds/mcap seeds/cdr
