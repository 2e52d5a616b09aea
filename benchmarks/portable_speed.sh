#!/usr/bin/env bash
# Speed cost of `train.py --portable-determinism`: training env steps/s of
# `train.py cartpole_swingup` with and without the flag, alternated ROUNDS
# times (native, portable, native, ...) so that both see the same machine
# state. The persistent compilation cache is on, so after each setting's first
# round the compile is loaded, not redone; env steps/s leaves out the first
# update in any case. Run it on an otherwise idle machine.
#
# Usage: bash benchmarks/portable_speed.sh   (ROUNDS=3 STEPS=409600 PY=python)
set -uo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-409600}
PY=${PY:-python}
OUT=${OUT:-/tmp/mjx-diffrl-portable-speed}
mkdir -p "$OUT"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-6s %-9s %12s\n" round setting "env-steps/s"
for r in $(seq 1 "$ROUNDS"); do
  for s in native portable; do
    flags=(); [ "$s" = portable ] && flags=(--portable-determinism)
    dir="$OUT/$s-$r"; rm -rf "$dir"
    XLA_FLAGS="" "$PY" train.py cartpole_swingup --num-timesteps "$STEPS" --seed 0 \
      --no-video --eval-episodes 1 --checkpoint-every 0 --run-dir "$dir" "${flags[@]}" \
      > "$dir.log" 2>&1 || { echo "$s: failed, see $dir.log" >&2; continue; }
    "$PY" - "$dir" "$r" "$s" <<'PY'
import csv, sys
d, r, s = sys.argv[1:]
rows = list(csv.DictReader(open(f"{d}/metrics.csv")))
# each row after the first covers env_steps since the previous row, at its sps
steps = [float(x["env_steps"]) for x in rows]
deltas = [b - a for a, b in zip(steps, steps[1:])]
secs = sum(dx / float(x["train/sps"]) for dx, x in zip(deltas, rows[1:]))
print(f"{r:6s} {s:9s} {sum(deltas) / secs:12.0f}")
PY
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
