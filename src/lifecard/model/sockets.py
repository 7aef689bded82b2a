"""Sockets: the only places where life-card modules touch the forward pass.

A `SocketBank` holds, per socket, the stacked tensors of every mounted slot; slot 0 is the empty
slot (the base) and stays zero. A `RowPlugs` is the per-step batch context: which slot each row
uses, built once per step and passed down the forward as an argument.

Projections are grouped by the input they share, because the forward runs them fused:

    qkv     = x_attn  @ [Wq; Wk; Wv]ᵀ     o    = attn  @ Woᵀ
    gate_up = x_mlp   @ [Wg; Wu]ᵀ         down = act   @ Wdᵀ

Each projection owns a segment of `max_rank` rows in its group's A and a block of B, so a group's
delta is one low-rank product with a block-diagonal B — exactly the sum of the per-projection deltas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from lifecard.model.config import ModelConfig

GROUPS: dict[str, tuple[str, ...]] = {
    "qkv": ("q_proj", "k_proj", "v_proj"),
    "o": ("o_proj",),
    "gate_up": ("gate_proj", "up_proj"),
    "down": ("down_proj",),
}
PROJECTIONS = tuple(p for members in GROUPS.values() for p in members)
GROUP_OF = {p: g for g, members in GROUPS.items() for p in members}


class SocketBank:
    """Per socket, the tensors of all slots.

    lora_a[g]: [layers, slots, r_g, in_g]    r_g = len(GROUPS[g]) * max_rank
    lora_b[g]: [layers, slots, out_g, r_g]   block-diagonal; the scale (α/r · strength) folded in
    steer:     [slots, layers, hidden]       added to each decoder layer's output

    The bank is float32 whatever the model's dtype: low-rank matmuls are tiny, and in bf16 their
    fixed cost on CPU is several times that of fp32 (BENCHMARKS.md).
    """

    def __init__(
        self,
        cfg: ModelConfig,
        num_slots: int,
        max_rank: int,
        dtype: torch.dtype = torch.float32,
        device="cpu",
    ):
        if num_slots < 2:
            raise ValueError(f"a bank needs at least 2 slots (slot 0 is the base), got {num_slots}")
        self.cfg, self.num_slots, self.max_rank = cfg, num_slots, max_rank
        shapes = cfg.projection_shapes()
        self.out_offsets: dict[str, int] = {}  # where each projection's rows start in its group output
        self.lora_a: dict[str, Tensor] = {}
        self.lora_b: dict[str, Tensor] = {}
        for g, members in GROUPS.items():
            in_g = shapes[members[0]][1]
            offset = 0
            for p in members:
                self.out_offsets[p] = offset
                offset += shapes[p][0]
            r_g = len(members) * max_rank
            L = cfg.num_layers
            self.lora_a[g] = torch.zeros(L, num_slots, r_g, in_g, dtype=dtype, device=device)
            self.lora_b[g] = torch.zeros(L, num_slots, offset, r_g, dtype=dtype, device=device)
        self.steer = torch.zeros(num_slots, cfg.num_layers, cfg.hidden_size, dtype=dtype, device=device)
        # which groups / steering each slot actually carries, so empty sockets cost nothing
        self.slot_groups: list[frozenset[str]] = [frozenset()] * num_slots
        self.slot_steers = [False] * num_slots
        self._views: dict[int, list[dict[str, tuple[Tensor, Tensor]]]] = {}  # see _slot_views

    @property
    def nbytes(self) -> int:
        tensors = [*self.lora_a.values(), *self.lora_b.values(), self.steer]
        return sum(t.numel() * t.element_size() for t in tensors)

    def resize(self, num_slots: int, max_rank: int) -> None:
        """Reallocate for `num_slots` slots of rank ≤ `max_rank`, keeping slots below both the old and the
        new count as they are. The caller makes sure no dropped slot or rank segment is in use."""
        if num_slots < 2 or max_rank < 1:
            raise ValueError(f"a bank needs ≥ 2 slots and rank ≥ 1, got {num_slots} slots, rank {max_rank}")
        keep, r_old, r_keep = min(num_slots, self.num_slots), self.max_rank, min(self.max_rank, max_rank)
        for g, members in GROUPS.items():
            a_old, b_old = self.lora_a[g], self.lora_b[g]
            layers, _, _, in_g = a_old.shape
            out_g = b_old.shape[2]
            a = a_old.new_zeros(layers, num_slots, len(members) * max_rank, in_g)
            b = b_old.new_zeros(layers, num_slots, out_g, len(members) * max_rank)
            for m in range(len(members)):  # each projection's rank segment moves to its new offset
                new, old = slice(m * max_rank, m * max_rank + r_keep), slice(m * r_old, m * r_old + r_keep)
                a[:, :keep, new] = a_old[:, :keep, old]
                b[:, :keep, :, new] = b_old[:, :keep, :, old]
            self.lora_a[g], self.lora_b[g] = a, b
        steer = self.steer.new_zeros(num_slots, *self.steer.shape[1:])
        steer[:keep] = self.steer[:keep]
        self.steer = steer
        grow = num_slots - keep
        self.slot_groups = self.slot_groups[:keep] + [frozenset()] * grow
        self.slot_steers = self.slot_steers[:keep] + [False] * grow
        self.num_slots, self.max_rank = num_slots, max_rank
        self._views.clear()

    def write(
        self,
        slot: int,
        lora: dict[tuple[int, str], tuple[Tensor, Tensor]] | None = None,
        steer: Tensor | None = None,
    ) -> None:
        """Fill `slot`. lora[(layer, proj)] = (A [r, in], B_scaled [out, r]) with r ≤ max_rank and the
        scale already folded into B; steer: [layers, hidden], already scaled."""
        if not 0 < slot < self.num_slots:
            raise ValueError(f"slot must be in 1..{self.num_slots - 1}, got {slot} (slot 0 is the base)")
        shapes = self.cfg.projection_shapes()
        for (layer, proj), (a, b) in (lora or {}).items():
            out, inp = shapes[proj]
            r = a.shape[0]
            if (
                a.shape != (r, inp)
                or b.shape != (out, r)
                or r > self.max_rank
                or not 0 <= layer < self.cfg.num_layers
            ):
                raise ValueError(
                    f"LoRA for layer {layer} {proj}: A {tuple(a.shape)} / B {tuple(b.shape)} do not fit "
                    f"A [r≤{self.max_rank}, {inp}], B [{out}, r] on {self.cfg.num_layers} layers"
                )
        if self.slot_groups[slot] or self.slot_steers[slot]:  # an empty slot is all zeros already
            self.clear(slot)
        self._views.pop(slot, None)
        groups = set()
        for (layer, proj), (a, b) in (lora or {}).items():
            g = GROUP_OF[proj]
            seg = GROUPS[g].index(proj) * self.max_rank
            row = self.out_offsets[proj]
            r = a.shape[0]
            self.lora_a[g][layer, slot, seg : seg + r] = a
            self.lora_b[g][layer, slot, row : row + b.shape[0], seg : seg + r] = b
            groups.add(g)
        self.slot_groups[slot] = frozenset(groups)
        if steer is not None:
            self.steer[slot] = steer
            self.slot_steers[slot] = True

    def clear(self, slot: int) -> None:
        for g in GROUPS:
            self.lora_a[g][:, slot].zero_()
            self.lora_b[g][:, slot].zero_()
        self.steer[slot].zero_()
        self.slot_groups[slot] = frozenset()
        self.slot_steers[slot] = False
        self._views.pop(slot, None)

    def plugs(self, slots: list[int]) -> RowPlugs:
        """The per-step context for a batch whose row i uses slot slots[i]."""
        for s in slots:
            if not 0 <= s < self.num_slots:
                raise ValueError(f"slot {s} is not in this bank (0..{self.num_slots - 1})")
        groups = frozenset().union(*(self.slot_groups[s] for s in slots))
        steer_rows = None
        if any(self.slot_steers[s] for s in slots):
            index = torch.tensor(slots, device=self.steer.device)
            steer_rows = self.steer.index_select(0, index)  # [b, layers, hidden], gathered once per step
        if not groups:
            return RowPlugs(groups, None, [], steer_rows)
        if len(set(slots)) == 1:
            return RowPlugs(groups, self._slot_views(slots[0]), [], steer_rows, self.steer.dtype)
        rows = [(i, self._slot_views(s)) for i, s in enumerate(slots) if self.slot_groups[s]]
        return RowPlugs(groups, None, rows, steer_rows, self.steer.dtype)

    def _slot_views(self, slot: int) -> list[dict[str, tuple[Tensor, Tensor]]]:
        """Per layer and group, (Aᵀ [in, r], Bᵀ [r, out]) of one slot: views made once per mount, not
        once per projection per step (at batch 1 the view bookkeeping costs as much as the matmuls)."""
        if slot not in self._views:
            self._views[slot] = [
                {
                    g: (self.lora_a[g][layer, slot].T, self.lora_b[g][layer, slot].T)
                    for g in self.slot_groups[slot]
                }
                for layer in range(self.cfg.num_layers)
            ]
        return self._views[slot]


class Plugs(Protocol):
    """What the forward calls at each socket: the bank's `RowPlugs` when serving, a forge's
    trainable plugs when training (same semantics, so what is trained is what is served)."""

    def lora_delta(self, y: Tensor, x: Tensor, layer: int, group: str) -> Tensor: ...

    def steer(self, h: Tensor, layer: int) -> Tensor: ...


SlotViews = list[dict[str, tuple[Tensor, Tensor]]]  # per layer: group -> (Aᵀ [in, r], Bᵀ [r, out])


@dataclass(frozen=True)
class RowPlugs:
    groups: frozenset[str]  # LoRA groups carried by at least one row
    uniform: SlotViews | None  # every row on this one slot: one matmul pair for the whole batch
    rows: list[tuple[int, SlotViews]]  # otherwise: (row, its slot) for each row that carries LoRA
    steer_rows: Tensor | None  # [b, layers, hidden] or None when no row steers
    dtype: torch.dtype = torch.float32  # the bank's

    def lora_delta(self, y: Tensor, x: Tensor, layer: int, group: str) -> Tensor:
        """Semantics: y[i] += (x[i] @ A[slot_i]ᵀ) @ B[slot_i]ᵀ for every row i.

        x: [b, t, in], y: [b, t, out] (the base projection's output, updated in place and returned).
        Rows of different slots each read their own factors straight from the bank (the BGMV idea):
        a view per row, no copy of anybody's weights. Rows on slot 0 are not touched at all, so they
        keep the base output bit for bit; a row's result never depends on its neighbours.
        """
        if group not in self.groups:
            return y
        if self.uniform is not None:
            a_t, b_t = self.uniform[layer][group]
            add_low_rank(y.view(-1, y.shape[-1]), x.reshape(-1, x.shape[-1]), a_t, b_t)
            return y
        xs = x.to(self.dtype).unbind(0)  # row views in one call: per row, only the two matmuls remain
        delta = y if y.dtype == self.dtype else torch.zeros(y.shape, dtype=self.dtype, device=y.device)
        deltas = delta.unbind(0)
        for i, views in self.rows:
            factors = views[layer].get(group)
            if factors is not None:
                a_t, b_t = factors
                deltas[i].addmm_(xs[i] @ a_t, b_t)
        if delta is not y:  # a bf16 model: add the fp32 deltas once (zeros on other rows: exact)
            y.add_(delta.to(y.dtype))
        return y

    def steer(self, h: Tensor, layer: int) -> Tensor:
        """Semantics: h[i] += v[slot_i, layer].  h: [b, t, hidden]."""
        if self.steer_rows is None:
            return h
        return h + self.steer_rows[:, layer, None, :].to(h.dtype)


def add_low_rank(y: Tensor, x: Tensor, a_t: Tensor, b_t: Tensor) -> None:
    """y += (x @ a_t) @ b_t in place, computed in the bank's dtype. y: [m, out], x: [m, in],
    a_t: [in, r], b_t: [r, out]."""
    if y.dtype == a_t.dtype:
        y.addmm_(x @ a_t, b_t)
    else:  # a bf16 model on an fp32 bank: these tiny matmuls run ~5× faster in fp32 on CPU
        y.add_(((x.to(a_t.dtype) @ a_t) @ b_t).to(y.dtype))
