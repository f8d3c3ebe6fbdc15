#!/bin/bash
# docs/erasure.md's "Keeping more: decay toward the original model" table: on flux-emoji, each target
# erased at the defaults (runs/s10-D-NAME) and with the logits' weight decay pulling toward the
# original model, binarised where the gate is fully open (runs/s10-W-NAME). Two one-thread erases
# at a time (one per core); each run ends with its 48-prompt held-out evaluation in its log and
# summary.json. Its runs, made by hand on 2026-11-27, took 162-255 s each (the three-concept ones
# 506 and 546 s); the script as a whole was not timed.
set -euo pipefail
cd "$(dirname "$0")/.."
W=(--decay-to init --weight-decay 0.1 --binarize threshold:2)
erase() { local out=$1; shift; MCE_THREADS=1 node bin/mce.js erase "$@" --out "runs/$out" > "runs/$out.log" 2>&1; }
mkdir -p runs
(
  erase s10-D-knife --concept "kitchen knife"
  erase s10-D-superhero --concept superhero
  erase s10-D-vampire --concept vampire
  erase s10-D-zombie --concept zombie
  erase s10-D-twemoji --concept "twemoji style"
  erase s10-D-multi --concept "kitchen knife" --concept dagger --concept vampire
) &
(
  erase s10-W-knife --concept "kitchen knife" "${W[@]}"
  erase s10-W-superhero --concept superhero "${W[@]}"
  erase s10-W-vampire --concept vampire "${W[@]}"
  erase s10-W-zombie --concept zombie "${W[@]}"
  erase s10-W-twemoji --concept "twemoji style" "${W[@]}"
  erase s10-W-multi --concept "kitchen knife" --concept dagger --concept vampire "${W[@]}"
) &
wait
grep -H "held-out eval\|done in" runs/s10-[DW]-*.log
