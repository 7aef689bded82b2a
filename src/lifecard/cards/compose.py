"""Mixing cards: a weighted sum of cards is itself one set of modules, composed exactly.

Semantics, for cards k with strengths s_k (B'_k = B_k · α_k/r_k · scale_k · s_k):

    Σ_k B'_k A_k  =  [B'_1 | B'_2 | …] · [A_1; A_2; …]      rank = Σ_k r_k   (rank concatenation)
    v             =  Σ_k v_k · scale_k · s_k                 (steering vectors add)

No SVD, no re-weighting, no approximation. A card at strength 0 contributes nothing at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lifecard.cards.card import Card, LoraFactors

Mix = Sequence[tuple[Card, float]]


def compose(mix: Mix) -> tuple[LoraFactors, Tensor | None]:
    """(lora (layer, proj) -> (A [Σr, in], B [out, Σr]) in float32, steer [layers, hidden] or None)."""
    parts: dict[tuple[int, str], tuple[list[Tensor], list[Tensor]]] = {}
    steer: Tensor | None = None
    for card, strength in mix:
        factors, vector = card.lora_factors(strength), card.steer_vector(strength)  # checks the range
        if strength == 0:
            continue
        for key, (a, b) in factors.items():
            a_parts, b_parts = parts.setdefault(key, ([], []))
            a_parts.append(a)
            b_parts.append(b)
        if vector is not None:
            steer = vector if steer is None else steer + vector
    lora = {key: (torch.cat(a_parts), torch.cat(b_parts, dim=1)) for key, (a_parts, b_parts) in parts.items()}
    return lora, steer


def rank_of(lora: LoraFactors) -> int:
    """The largest rank over the projections of a composed LoRA (0 when there is none)."""
    return max((a.shape[0] for a, _ in lora.values()), default=0)
