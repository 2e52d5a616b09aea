#!/usr/bin/env bash
# Does one seed train bit-identically across CPU instruction sets, with and
# without `train.py --portable-determinism`, and what does the flag cost?
#
# Runs `train.py cartpole_swingup --num-timesteps $STEPS` (seed 0, no video,
# compilation cache OFF so that every setting compiles its own code) under:
#   native                 this CPU's full instruction set
#   native+portable        --portable-determinism
#   avx2-machine           XLA_FLAGS=--xla_cpu_max_isa=AVX2 (stands in for a CPU
#                          without AVX-512)
#   avx2-machine+portable  both
#   1-core+portable        taskset -c 0 (a CPU with another thread count)
#   sse4_2-machine         XLA_FLAGS=--xla_cpu_max_isa=SSE4_2 (a pre-AVX2 CPU)
# and prints, per setting: sha256 of the trained policy.msgpack, the
# deterministic eval return and the mean training env steps/s (first update,
# which includes the compile, left out). Times are only comparable between
# rows of one run on an otherwise idle machine.
#
# Usage: bash benchmarks/determinism.sh [SETTING ...]   (default: all)
#   STEPS=300000 PY=.venv/bin/python OUT=/tmp/mjx-diffrl-determinism
set -uo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-300000}
PY=${PY:-python}
OUT=${OUT:-/tmp/mjx-diffrl-determinism}
mkdir -p "$OUT"
settings=("$@")
[ ${#settings[@]} -eq 0 ] && settings=(native native+portable avx2-machine
  avx2-machine+portable 1-core+portable sse4_2-machine)

printf "%-22s %-16s %-22s %10s %8s\n" setting policy-sha256 eval-return "env-steps/s" wall-s
for s in "${settings[@]}"; do
  xla="" ; flags=() ; pre=()
  case $s in
    native) ;;
    native+portable) flags=(--portable-determinism) ;;
    avx2-machine) xla="--xla_cpu_max_isa=AVX2" ;;
    avx2-machine+portable) xla="--xla_cpu_max_isa=AVX2"; flags=(--portable-determinism) ;;
    1-core+portable) pre=(taskset -c 0); flags=(--portable-determinism) ;;
    sse4_2-machine) xla="--xla_cpu_max_isa=SSE4_2" ;;
    *) echo "unknown setting $s" >&2; exit 2 ;;
  esac
  dir="$OUT/$s"; rm -rf "$dir"
  t0=$(date +%s.%N)
  if ! XLA_FLAGS="$xla" MJX_DIFFRL_JAX_CACHE="" "${pre[@]}" "$PY" train.py cartpole_swingup \
      --num-timesteps "$STEPS" --seed 0 --no-video --run-dir "$dir" "${flags[@]}" \
      > "$OUT/$s.log" 2>&1; then
    echo "$s: train.py failed, see $OUT/$s.log" >&2; continue
  fi
  wall=$(echo "$(date +%s.%N) - $t0" | bc)
  sha=$(sha256sum "$dir/policy.msgpack" | cut -c1-16)
  "$PY" - "$dir" "$s" "$sha" "$wall" <<'PY'
import csv, json, sys
d, s, sha, wall = sys.argv[1:]
ev = json.load(open(f"{d}/eval.json"))
rows = list(csv.DictReader(open(f"{d}/metrics.csv")))[1:]
sps = sum(float(r["train/sps"]) for r in rows) / max(len(rows), 1)
print(f"{s:22s} {sha:16s} {ev['return_mean']:9.2f} ± {ev['return_std']:7.2f} {sps:10.0f} {float(wall):8.1f}")
PY
done
