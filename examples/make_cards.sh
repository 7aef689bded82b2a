#!/usr/bin/env bash
# Forge every example card in examples/cards/ from its profile, then measure it (`lifecard eval`
# writes the figures into the card and a report beside it). Reproducible: every forge is seeded.
#
#   tone       captain-pip.card     forge steer   (seconds, no training)
#   values     mira-solberg.card    forge bake    (the persona's values distilled into a LoRA)
#   knowledge  ada-quill.card       forge card    (steer-free: bake + tune on 22 facts)
#   imported   professor-ashdown.card  forge import of a Character Card V3 PNG
#
# Run from the repository root: bash examples/make_cards.sh   (about half an hour on a laptop CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
LIFECARD=${LIFECARD:-.venv/bin/lifecard}
PY=${PY:-.venv/bin/python}
OUT=examples/cards
mkdir -p "$OUT"

time "$LIFECARD" forge steer examples/profiles/captain-pip.yaml -o "$OUT/captain-pip.card" --no-eval
time "$LIFECARD" forge bake examples/profiles/mira-solberg.yaml -o "$OUT/mira-solberg.card" --no-eval
time "$LIFECARD" forge card examples/profiles/ada-quill.yaml -o "$OUT/ada-quill.card" --no-eval

# the Character Card V3 travels as a PNG, as front-ends share them: make it, then import it
"$PY" -c "
import json, sys
from lifecard.cards.charcard import write_png_card
card = json.load(open('examples/charcards/professor-ashdown.json'))
open('examples/charcards/professor-ashdown.png', 'wb').write(write_png_card(card['data']))
"
time "$LIFECARD" forge import examples/charcards/professor-ashdown.png -o "$OUT/professor-ashdown.card" --no-eval

for card in captain-pip mira-solberg ada-quill professor-ashdown; do
  "$LIFECARD" eval "$OUT/$card.card" --report "$OUT/$card.eval"
done
