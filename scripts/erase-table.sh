#!/bin/bash
# The erasure tables (README "Erasure", docs/erasure.md): issue 5's cases (an object, characters, a style, three concepts at
# once) erased at the defaults, on flux-emoji or sd-emoji (sd-emoji with DDIM 20 steps, CFG inside
# each step, as the benchmark runs it). Two one-thread erases at a time (one per core); each run
# ends with its 48-prompt held-out evaluation, printed in its log and kept in its summary.json.
# Usage: bash scripts/erase-table.sh [MODEL] [PREFIX] [FLAGS...]   (runs/PREFIX-knife, ...; default
# sd-emoji s12-sd; FLAGS go to every erase, e.g. --hooks '*.attn2.to_k,*.attn2.to_v')
set -euo pipefail
M=${1:-sd-emoji}
P=${2:-s12-sd}
extra=("${@:3}")
cd "$(dirname "$0")/.."
steps=()
[ "$M" = sd-emoji ] && steps=(--steps 20)
erase() { local out=$1; shift; MCE_THREADS=1 node bin/mce.js erase --model "$M" "${steps[@]}" "${extra[@]}" "$@" --out "runs/$out" > "runs/$out.log" 2>&1; }
mkdir -p runs
(
  erase $P-knife --concept "kitchen knife"
  erase $P-multi --concept "kitchen knife" --concept dagger --concept vampire
) &
(
  erase $P-superhero --concept superhero
  erase $P-twemoji --concept "twemoji style"
  erase $P-vampire --concept vampire
  erase $P-zombie --concept zombie
) &
wait
grep -H "held-out eval\|done in" runs/$P-*.log
