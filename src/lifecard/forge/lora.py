"""Training a LoRA through the model's own sockets: the trainer every weight-making forge shares.

The trainable factors are plain tensors, one (A [r, in], B [out, r]) per (layer, projection).
`TrainPlugs` gives the forward exactly the semantics of a mounted card
(y += s·(x Aᵀ) Bᵀ per projection, s = α/r), so what is trained is what is served.

The loop is the usual one — AdamW, shuffled mini-batches, a held-out split evaluated every few
steps, the best factors kept, early stopping — plus what a forge promises: a checkpoint every
few steps and on cancel, resumed when the same recipe runs again, and a seed that fixes the
initialisation and the batch order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from lifecard.forge.progress import Checkpoints, ForgeCancelled, Progress
from lifecard.model.config import ModelConfig
from lifecard.model.llama import Transformer
from lifecard.model.sockets import GROUPS

Factors = dict[tuple[int, str], tuple[Tensor, Tensor]]  # (layer, proj) -> (A [r, in], B [out, r])

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
EVERY = (*ATTENTION, "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraRecipe:
    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = EVERY
    steps: int = 60  # the most optimiser steps; early stopping may end sooner
    lr: float = 2e-3
    batch_size: int = 8
    micro_batch: int = 6  # examples per forward/backward; gradients accumulate over a batch
    eval_every: int = 10
    patience: int = 3  # evaluations without a better held-out loss before stopping
    seed: int = 0

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "targets": list(self.targets)}


@dataclass
class TrainResult:
    factors: Factors
    steps: int  # optimiser steps taken
    best_step: int  # where the kept factors come from
    train_loss: list[float] = field(default_factory=list)  # per step
    held_out_loss: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)
    resumed_from: int = 0

    def record(self) -> dict[str, Any]:
        """What a card's `forge` record keeps of the run."""
        return {
            "steps_taken": self.steps,
            "resumed_from": self.resumed_from,
            "best_step": self.best_step,
            "final_loss": self.train_loss[-1] if self.train_loss else None,
            "held_out_loss": self.held_out_loss,
        }


class TrainPlugs:
    """Plugs for training: per projection, s·(x Aᵀ) Bᵀ of the factors being trained."""

    def __init__(self, cfg: ModelConfig, factors: Factors, scale: float):
        self.factors, self.scale = factors, scale
        self.out = {p: shape[0] for p, shape in cfg.projection_shapes().items()}

    def lora_delta(self, y: Tensor, x: Tensor, layer: int, group: str) -> Tensor:
        """y: [b, t, out_g] (the fused group's base output), x: [b, t, in]."""
        parts = []
        for p in GROUPS[group]:
            pair = self.factors.get((layer, p))
            parts.append(
                None if pair is None else (x.to(pair[0].dtype) @ pair[0].T) @ (pair[1].T * self.scale)
            )
        if all(d is None for d in parts):
            return y
        full = [
            d if d is not None else y.new_zeros(*y.shape[:-1], self.out[p], dtype=torch.float32)
            for d, p in zip(parts, GROUPS[group], strict=True)
        ]
        return y + torch.cat(full, dim=-1).to(y.dtype)

    def steer(self, h: Tensor, layer: int) -> Tensor:
        return h


def init_factors(cfg: ModelConfig, recipe: LoraRecipe, generator: torch.Generator) -> Factors:
    """A like PEFT's default (kaiming-uniform), B zero: a fresh LoRA is exactly the base."""
    shapes = cfg.projection_shapes()
    factors: Factors = {}
    for layer in range(cfg.num_layers):
        for p in recipe.targets:
            out, inp = shapes[p]
            a = (torch.rand(recipe.rank, inp, generator=generator) * 2 - 1) / math.sqrt(inp)
            factors[layer, p] = (a, torch.zeros(out, recipe.rank))
    return factors


LossFn = Callable[[TrainPlugs, list[int]], Tensor]  # (plugs, example indices) -> mean loss


def train_lora(
    model: Transformer,
    loss_fn: LossFn,
    num_examples: int,
    recipe: LoraRecipe,
    *,
    held_out: Sequence[int] = (),
    held_out_loss: LossFn | None = None,
    progress: Progress | None = None,
    checkpoints: Checkpoints | None = None,
    name: str = "lora",
    checkpoint_every: int = 10,
) -> TrainResult:
    """Train one LoRA on examples 0..num_examples-1 except `held_out`, which decide early stopping
    (measured by `held_out_loss`, by default the training loss)."""
    progress = progress or Progress()
    gen = torch.Generator().manual_seed(recipe.seed)
    factors = init_factors(model.cfg, recipe, gen)
    params = [t.requires_grad_() for pair in factors.values() for t in pair]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)
    kept_out = set(held_out)
    train_ids = [i for i in range(num_examples) if i not in kept_out]
    if not train_ids:
        raise ValueError("no training examples left after the held-out split")

    result = TrainResult(factors={}, steps=0, best_step=0)
    best_loss, best, stale, order = math.inf, _snapshot(factors), 0, []
    state = checkpoints.load(name) if checkpoints else None
    if state is not None:
        _restore(factors, state["factors"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        result.train_loss, result.held_out_loss = list(state["train_loss"]), list(state["held_out_loss"])
        result.steps = result.resumed_from = int(state["step"])
        best_loss, stale, order = float(state["best_loss"]), int(state["stale"]), list(state["order"])
        best, result.best_step = state["best"], int(state["best_step"])

    def save() -> None:
        if checkpoints is not None:
            checkpoints.save(
                name,
                {
                    "factors": _snapshot(factors),
                    "optimizer": opt.state_dict(),
                    "generator": gen.get_state(),
                    "step": result.steps,
                    "train_loss": result.train_loss,
                    "held_out_loss": result.held_out_loss,
                    "best_loss": best_loss,
                    "best": best,
                    "best_step": result.best_step,
                    "stale": stale,
                    "order": order,
                },
            )

    measure = held_out_loss or loss_fn

    def evaluate() -> float:
        with torch.no_grad():
            plugs = TrainPlugs(model.cfg, factors, recipe.scale)
            ids = list(held_out) or train_ids
            chunks = [ids[i : i + recipe.batch_size] for i in range(0, len(ids), recipe.batch_size)]
            return sum(measure(plugs, c).item() * len(c) for c in chunks) / len(ids)

    progress.start(name, recipe.steps)
    progress.advance(result.steps)
    try:
        while result.steps < recipe.steps and stale < recipe.patience:
            progress.check()
            if len(order) < recipe.batch_size:  # a new epoch: reshuffle, seeded
                order += [train_ids[i] for i in torch.randperm(len(train_ids), generator=gen).tolist()]
            batch, order = order[: recipe.batch_size], order[recipe.batch_size :]
            opt.zero_grad()
            loss = 0.0
            for i in range(0, len(batch), recipe.micro_batch):  # bounds the activations kept for backward
                part = batch[i : i + recipe.micro_batch]
                weighted = loss_fn(TrainPlugs(model.cfg, factors, recipe.scale), part) * (
                    len(part) / len(batch)
                )
                weighted.backward()
                loss += weighted.item()
            opt.step()
            result.steps += 1
            result.train_loss.append(round(loss, 5))
            figures: dict[str, Any] = {"loss": result.train_loss[-1]}
            if result.steps % recipe.eval_every == 0 or result.steps == recipe.steps:
                held = evaluate()
                result.held_out_loss.append((result.steps, round(held, 5)))
                figures["held_out"] = round(held, 5)
                if held < best_loss - 1e-4:
                    best_loss, best, result.best_step, stale = held, _snapshot(factors), result.steps, 0
                else:
                    stale += 1
            if result.steps % checkpoint_every == 0:
                save()
            progress.advance(1, **figures)
    except (ForgeCancelled, KeyboardInterrupt):
        save()
        raise
    save()
    result.factors = best if result.best_step else _snapshot(factors)
    return result


def _snapshot(factors: Factors) -> Factors:
    return {k: (a.detach().clone(), b.detach().clone()) for k, (a, b) in factors.items()}


def _restore(factors: Factors, saved: Factors) -> None:
    with torch.no_grad():
        for k, (a, b) in factors.items():
            a.copy_(saved[k][0])
            b.copy_(saved[k][1])
