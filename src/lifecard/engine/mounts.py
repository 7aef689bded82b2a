"""Mounts: which card, or weighted mix of cards, sits in which slot of the socket bank.

A mount is resolved against the loaded base before anything is written: every card is checked
(family, shapes, fingerprint) and every strength against its card's range; then the mix is composed
exactly (`cards.compose`) and written into one slot. The same mix mounted twice shares its slot.
The bank grows when a mix needs more rank or there is no free slot, and shrinks back as trailing
slots empty, so unmounting gives the memory back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lifecard.cards.base import BaseInfo, check_card
from lifecard.cards.compose import Mix, compose, rank_of
from lifecard.model.sockets import SocketBank

MixKey = tuple[tuple[str, float], ...]  # (card content digest, strength), sorted


@dataclass
class Mount:
    slot: int
    key: MixKey
    label: str  # e.g. "ada×0.8 + pirate×0.5"
    rank: int  # largest composed rank over the projections (0 for steering only)
    users: int = 1  # how many mount() calls hold it
    last_used: float = field(default_factory=time.monotonic)
    warnings: list[str] = field(default_factory=list)


class MountTable:
    """`idle_bytes`: how much bank memory mounts nobody holds may keep, so the next request for the
    same mix needs no mount; beyond it the least recently used idle mounts are cleared. 0 clears a
    mount as soon as its last holder lets go."""

    def __init__(self, bank: SocketBank, base: BaseInfo, *, strict: bool = False, idle_bytes: int = 0):
        self.bank, self.base, self.strict, self.idle_bytes = bank, base, strict, idle_bytes
        self.min_slots, self.min_rank = bank.num_slots, bank.max_rank
        self.by_slot: dict[int, Mount] = {}
        self.hits = self.evictions = 0

    def mount(self, mix: Mix) -> Mount:
        """Place `mix` [(card, strength), …] in a slot (slot 0 when every strength is 0)."""
        live = [(card, float(s)) for card, s in mix if s != 0]
        warnings = [w for card, _ in mix for w in check_card(card, self.base, strict=self.strict)]
        lora, steer = compose(mix)  # checks each strength against its card's range
        key: MixKey = tuple(sorted((card.manifest["content_sha256"], s) for card, s in live))
        label = " + ".join(f"{card.id}×{s:g}" for card, s in live) or "base"
        if not key:
            return Mount(0, key, label, 0, warnings=warnings)
        for mount in self.by_slot.values():
            if mount.key == key:
                mount.users += 1
                mount.last_used = time.monotonic()
                self.hits += 1
                return mount
        rank = rank_of(lora)
        slot = self._free_slot()
        if rank > self.bank.max_rank:
            self.bank.resize(self.bank.num_slots, rank)
        self.bank.write(slot, lora=lora, steer=steer)
        mount = Mount(slot, key, label, rank, warnings=warnings)
        self.by_slot[slot] = mount
        return mount

    def unmount(self, slot: int) -> None:
        """Release one hold on `slot`. When nobody holds it, it stays mounted while idle mounts fit in
        `idle_bytes`; otherwise it is cleared, and the bank may shrink."""
        mount = self.by_slot.get(slot)
        if mount is None:
            raise ValueError(f"slot {slot} holds no mounted card (mounted: {sorted(self.by_slot) or 'none'})")
        mount.users -= 1
        mount.last_used = time.monotonic()
        if mount.users == 0:
            self._evict(self.idle_bytes)

    def _evict(self, keep_bytes: int) -> None:
        """Clear idle mounts, least recently used first, until they take at most `keep_bytes`."""
        idle = sorted((m for m in self.by_slot.values() if m.users == 0), key=lambda m: m.last_used)
        slot_bytes = self.bank.nbytes // self.bank.num_slots
        while idle and len(idle) * slot_bytes > keep_bytes:
            mount = idle.pop(0)
            del self.by_slot[mount.slot]
            self.bank.clear(mount.slot)
            self.evictions += 1
        self._shrink()

    def __iter__(self):
        return iter(sorted(self.by_slot.values(), key=lambda m: m.slot))

    def _free_slot(self) -> int:
        for slot in range(1, self.bank.num_slots):
            if slot not in self.by_slot:
                return slot
        idle = [m for m in self.by_slot.values() if m.users == 0]
        if idle:  # reuse the least recently used idle slot before growing the bank
            lru = min(idle, key=lambda m: m.last_used)
            del self.by_slot[lru.slot]
            self.bank.clear(lru.slot)
            self.evictions += 1
            return lru.slot
        slot = self.bank.num_slots
        self.bank.resize(2 * slot, self.bank.max_rank)
        return slot

    def _shrink(self) -> None:
        """Drop trailing empty slots and rank nobody uses, down to the bank's first size."""
        slots = max(self.min_slots, max(self.by_slot, default=0) + 1)
        rank = max(self.min_rank, max((m.rank for m in self.by_slot.values()), default=0))
        if (slots, rank) != (self.bank.num_slots, self.bank.max_rank):
            self.bank.resize(slots, rank)
