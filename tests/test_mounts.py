"""Plugging cards into a running model: exact mixes, strength, shared slots, a bank that grows and
shrinks, refusals that leave everything as it was."""

from dataclasses import replace

import pytest
import torch
from test_sockets import merged_hf, random_lora
from tiny import hf_tiny, ours_from

from lifecard.cards.base import BaseInfo
from lifecard.cards.card import Card
from lifecard.cards.validate import CardError
from lifecard.engine.mounts import MountTable
from lifecard.model.sockets import SocketBank

FINGERPRINT = "ab" * 32


@pytest.fixture
def world():
    hf = hf_tiny()
    model = ours_from(hf)
    base = BaseInfo.from_config(model.cfg, "tiny", FINGERPRINT)
    table = MountTable(SocketBank(model.cfg, num_slots=2, max_rank=4, dtype=torch.float32), base)
    ids = torch.randint(0, 96, (3, 8))
    positions = torch.arange(8).expand(3, 8)
    return hf, model, base, table, ids, positions


def card(base, name, rank=4, seed=0, steer=False, alpha=None, **kw):
    cfg_layers = base.num_layers
    lora = random_lora_for(base, rank, seed)
    vec = (
        torch.randn(cfg_layers, base.hidden_size, generator=torch.Generator().manual_seed(seed))
        if steer
        else None
    )
    return Card.new(id=name, name=name.title(), base=base, lora=lora, lora_alpha=alpha, steer=vec, **kw)


def random_lora_for(base, rank, seed):
    class Cfg:  # random_lora only needs the shapes and the layer count
        num_layers = base.num_layers

        @staticmethod
        def projection_shapes():
            return base.projections

    return random_lora(Cfg, rank, seed)


def logits(model, table, ids, positions, slots):
    return model(ids, positions, plugs=table.bank.plugs(slots))


def test_a_mix_equals_merged_weights(world):
    hf, model, base, table, ids, positions = world
    x, y = card(base, "x", seed=1, alpha=8.0), card(base, "y", rank=2, seed=2)
    mount = table.mount([(x, 0.7), (y, 0.4)])
    assert mount.rank == 6 and table.bank.max_rank >= 6  # ranks concatenate; the bank grew
    merged = {}
    for c, s in ((x, 0.7), (y, 0.4)):
        for key, (a, b) in c.lora_factors(s).items():
            delta_b, delta_a = merged.get(key, (None, None)) or (b, a)
            merged[key] = (torch.cat([delta_b, b], 1), torch.cat([delta_a, a])) if key in merged else (b, a)
    reference = merged_hf(hf, {k: (a, b) for k, (b, a) in merged.items()})
    want = reference(ids).logits
    got = logits(model, table, ids, positions, [mount.slot, 0, mount.slot])
    assert (got[0] - want[0]).abs().max() <= 1e-4 and (got[2] - want[2]).abs().max() <= 1e-4
    assert torch.equal(got[1], model(ids, positions)[1])  # the base row stays the base, bit for bit


def test_strength_zero_is_the_base_exactly(world):
    _, model, base, table, ids, positions = world
    x = card(base, "x", steer=True)
    mount = table.mount([(x, 0.0)])
    assert mount.slot == 0
    assert torch.equal(logits(model, table, ids, positions, [mount.slot] * 3), model(ids, positions))


def test_strength_scales_the_delta_linearly(world):
    _, _, base, table, _, _ = world
    x = card(base, "x", seed=3, steer=True)
    half, full = table.mount([(x, 0.5)]), table.mount([(x, 1.0)])
    assert half.slot != full.slot  # another strength is another mount
    for g, b in table.bank.lora_b.items():  # strength folds into B (and the steering vector) at mount
        assert torch.equal(2 * b[:, half.slot], b[:, full.slot]), g
    assert torch.equal(2 * table.bank.steer[half.slot], table.bank.steer[full.slot])


def test_the_same_mix_shares_a_slot_and_unmount_gives_memory_back(world):
    _, model, base, table, ids, positions = world
    empty_bytes = table.bank.nbytes
    x, y = card(base, "x", seed=1), card(base, "y", seed=2)
    first = table.mount([(x, 1.0), (y, 0.5)])
    again = table.mount([(y, 0.5), (x, 1.0)])  # same mix, other order
    assert again.slot == first.slot and first.users == 2
    others = [table.mount([(card(base, f"c{i}", seed=10 + i), 1.0)]) for i in range(3)]  # forces growth
    assert table.bank.num_slots > 2 and table.bank.nbytes > empty_bytes
    keep = others[0]
    before = logits(model, table, ids, positions, [keep.slot] * 3)
    table.unmount(first.slot)
    table.unmount(first.slot)
    for m in others[1:]:
        table.unmount(m.slot)
    # survivors keep their values; the bank's rank shrank, so only the float summation order may differ
    torch.testing.assert_close(
        logits(model, table, ids, positions, [keep.slot] * 3), before, rtol=1e-5, atol=1e-6
    )
    table.unmount(keep.slot)
    assert table.bank.nbytes == empty_bytes
    with pytest.raises(ValueError, match="holds no mounted card"):
        table.unmount(keep.slot)


def test_a_refused_card_changes_nothing(world):
    _, model, base, table, ids, positions = world
    x = card(base, "x", seed=1)
    kept = table.mount([(x, 1.0)])
    before = (table.bank.nbytes, logits(model, table, ids, positions, [kept.slot] * 3))
    narrow = replace(model.cfg, hidden_size=32, num_heads=2, num_kv_heads=1)
    other = BaseInfo.from_config(narrow, "narrow", FINGERPRINT)
    alien = Card.new(id="alien", name="Alien", base=other, steer=torch.randn(base.num_layers, 32))
    with pytest.raises(CardError, match="hidden size 32, this model has 64"):
        table.mount([(x, 0.5), (alien, 1.0)])
    with pytest.raises(CardError, match="strength"):
        table.mount([(x, 5.0)])
    assert table.bank.nbytes == before[0]
    assert torch.equal(logits(model, table, ids, positions, [kept.slot] * 3), before[1])
    assert [m.slot for m in table] == [kept.slot]


def test_another_fingerprint_warns_and_strict_refuses(world):
    _, _, base, table, _, _ = world
    elsewhere = BaseInfo(**{**base.__dict__, "fingerprint": "cd" * 32})
    x = card(elsewhere, "x")
    mount = table.mount([(x, 1.0)])
    assert len(mount.warnings) == 1 and "was made for other weights of the same shape" in mount.warnings[0]
    strict = MountTable(SocketBank(table.bank.cfg, 2, 4, torch.float32), base, strict=True)
    with pytest.raises(CardError, match="other weights of the same shape"):
        strict.mount([(x, 1.0)])


def test_idle_mounts_stay_within_their_budget_least_recently_used_first(world):
    _, _, base, table, _, _ = world
    slot_bytes = table.bank.nbytes // table.bank.num_slots
    table.idle_bytes = 2 * slot_bytes  # room for two idle mounts
    cards = [card(base, f"c{i}", seed=i) for i in range(3)]
    slots = [table.mount([(c, 1.0)]).slot for c in cards]
    for slot in slots:
        table.unmount(slot)  # c0 released first: the least recently used
    assert [m.key[0][0] for m in table] == [c.manifest["content_sha256"] for c in cards[1:]]
    again = table.mount([(cards[2], 1.0)])
    assert again.slot == slots[2] and table.hits == 1 and table.evictions == 1  # reused, not remounted
