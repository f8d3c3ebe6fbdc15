#!/bin/bash
# The README's sd-emoji erasure table: issue 5's cases (an object, characters, a style, three
# concepts at once) erased from sd-emoji at the defaults, with DDIM 20 steps and CFG inside each step
# as the benchmark runs it. Two one-thread erases at a time (one per core); each run ends with its
# 48-prompt held-out evaluation, printed in its log and kept in its summary.json.
# Usage: bash scripts/sd-erase-table.sh [PREFIX]   (runs/PREFIX-knife, ...; default s12-sd)
set -euo pipefail
P=${1:-s12-sd}
cd "$(dirname "$0")/.."
erase() { local out=$1; shift; MCE_THREADS=1 node bin/mce.js erase --model sd-emoji --steps 20 "$@" --out "runs/$out" > "runs/$out.log" 2>&1; }
mkdir -p runs
(
  erase $P-knife --concept "kitchen knife"
  erase $P-multi --concept "kitchen knife" --concept dagger --concept vampire
) &
(
  erase $P-superhero --concept superhero
  erase $P-twemoji --concept "twemoji style"
  erase $P-vampire --concept vampire
) &
wait
grep -H "held-out eval\|done in" runs/$P-*.log
