"""The little that cards know about a base model, and the check that a card fits one.

`cards` never imports the model: a `BaseInfo` (family, sizes, projection shapes, weights fingerprint)
is all a card is checked against, and it is exactly what a card's manifest records under `base`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lifecard.cards.validate import PROJECTIONS, CardError

if TYPE_CHECKING:
    from lifecard.cards.card import Card
    from lifecard.model.config import ModelConfig

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BaseInfo:
    family: str  # "llama", "mistral", "qwen2"
    model_id: str  # where it came from, for people (e.g. "HuggingFaceTB/SmolLM2-135M-Instruct"); not compared
    hidden_size: int
    num_layers: int
    vocab_size: int
    fingerprint: str  # sha256 hex of the weights; the authority on "same model"
    projections: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # proj -> (out, in)

    def __post_init__(self) -> None:
        if not _SHA256.match(self.fingerprint):
            raise ValueError(f"a base fingerprint is a lowercase sha256 hex digest, got {self.fingerprint!r}")
        if set(self.projections) != set(PROJECTIONS):
            raise ValueError(f"a base needs the (out, in) shape of each of {', '.join(PROJECTIONS)}")

    @classmethod
    def from_config(cls, cfg: ModelConfig, model_id: str, fingerprint: str) -> BaseInfo:
        return cls(
            family=cfg.family,
            model_id=model_id,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            vocab_size=cfg.vocab_size,
            fingerprint=fingerprint,
            projections=dict(cfg.projection_shapes()),
        )

    @classmethod
    def from_manifest(cls, base: Mapping[str, Any]) -> BaseInfo:
        """From a (schema-valid) manifest's `base` object."""
        return cls(
            family=base["family"],
            model_id=base["model_id"],
            hidden_size=base["hidden_size"],
            num_layers=base["num_layers"],
            vocab_size=base["vocab_size"],
            fingerprint=base["fingerprint"],
            projections={p: (int(s[0]), int(s[1])) for p, s in base["projections"].items()},
        )

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's `base` object."""
        return {
            "family": self.family,
            "model_id": self.model_id,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "vocab_size": self.vocab_size,
            "fingerprint": self.fingerprint,
            "projections": {p: list(self.projections[p]) for p in PROJECTIONS},
        }


def check_card(card: Card, base: BaseInfo, *, strict: bool = False) -> list[str]:
    """Whether `card` may be mounted on `base`; returns warnings, raises CardError when it may not.

    Errors: another family, hidden size, layer count or projection shape — the tensors would not fit
    or would mean nothing. Warnings (errors when strict): the same shapes with other weights (another
    fingerprint) or another vocabulary — the card fits but was made on a different model.
    """
    made = card.manifest["base"]
    name = f"card {card.label}"
    again = "forge it again for this model"
    errors: list[str] = []
    if made["family"] != base.family:
        errors.append(f"{name} was made for a {made['family']} model, this model is {base.family}: {again}")
    if made["hidden_size"] != base.hidden_size:
        errors.append(
            f"{name} was made for hidden size {made['hidden_size']}, this model has {base.hidden_size}: "
            + again
        )
    if made["num_layers"] != base.num_layers:
        errors.append(
            f"{name} was made for {made['num_layers']} layers, this model has {base.num_layers}: {again}"
        )
    for p in PROJECTIONS:
        theirs, ours = tuple(made["projections"][p]), tuple(base.projections[p])
        if theirs != ours:
            errors.append(
                f"{name} was made for {p} of shape [out, in] {list(theirs)}, this model's is {list(ours)}: "
                + again
            )

    warnings: list[str] = []
    if made["vocab_size"] != base.vocab_size:
        warnings.append(
            f"{name} was made for a vocabulary of {made['vocab_size']} tokens, this model has "
            f"{base.vocab_size}: it fits but was made on another model; {again}"
        )
    if made["fingerprint"] != base.fingerprint:
        warnings.append(
            f"{name} was made for other weights of the same shape ({made['model_id'] or 'unnamed'}, "
            f"{made['fingerprint'][:12]}…), this model is {base.model_id or 'unnamed'} "
            f"({base.fingerprint[:12]}…): it may behave differently; {again}"
        )
    if strict:
        errors += warnings
        warnings = []
    if errors:
        raise CardError(errors)
    return warnings
