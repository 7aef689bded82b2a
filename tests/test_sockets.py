"""The sockets: the empty slot is the base bit for bit; LoRA deltas equal merged weights; steering
equals adding the vector to each layer's output; rows do not see each other's slots."""

import pytest
import torch
from tiny import hf_tiny, ours_from

from lifecard.model.sockets import PROJECTIONS, SocketBank

HF_NAMES = {
    "q_proj": "self_attn.q_proj",
    "k_proj": "self_attn.k_proj",
    "v_proj": "self_attn.v_proj",
    "o_proj": "self_attn.o_proj",
    "gate_proj": "mlp.gate_proj",
    "up_proj": "mlp.up_proj",
    "down_proj": "mlp.down_proj",
}


def random_lora(cfg, rank, seed, projections=PROJECTIONS):
    g = torch.Generator().manual_seed(seed)
    shapes = cfg.projection_shapes()
    return {
        (layer, p): (
            torch.randn(rank, shapes[p][1], generator=g) * 0.2,
            torch.randn(shapes[p][0], rank, generator=g) * 0.2,
        )
        for layer in range(cfg.num_layers)
        for p in projections
    }


def merged_hf(hf, lora):
    """transformers' model with W + B·A written into its weights: the reference for a LoRA slot."""
    merged = hf_tiny() if hf.config.model_type == "llama" else hf_tiny("qwen2")
    merged.load_state_dict(hf.state_dict())
    for (layer, proj), (a, b) in lora.items():
        merged.get_submodule(f"model.layers.{layer}.{HF_NAMES[proj]}").weight += b @ a
    return merged


@pytest.fixture
def setup():
    hf = hf_tiny()
    model = ours_from(hf)
    bank = SocketBank(model.cfg, num_slots=4, max_rank=4, dtype=torch.float32)
    ids = torch.randint(0, 96, (4, 9))
    positions = torch.arange(9).expand(4, 9)
    return hf, model, bank, ids, positions


def test_empty_slot_is_the_base_bit_for_bit(setup):
    _, model, bank, ids, positions = setup
    bank.write(
        1, random_lora(model.cfg, 4, 1), steer=torch.randn(model.cfg.num_layers, model.cfg.hidden_size)
    )
    base = model(ids, positions)
    assert torch.equal(model(ids, positions, plugs=bank.plugs([0, 0, 0, 0])), base)
    # rows on slot 0 stay the base exactly while their neighbours carry a card
    mixed = model(ids, positions, plugs=bank.plugs([0, 1, 0, 1]))
    assert torch.equal(mixed[0], base[0]) and torch.equal(mixed[2], base[2])
    assert not torch.allclose(mixed[1], base[1])


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("rank", [1, 4])
def test_lora_slot_equals_merged_weights(family, rank):
    hf = hf_tiny(family)
    model = ours_from(hf)
    bank = SocketBank(model.cfg, num_slots=3, max_rank=4, dtype=torch.float32)
    lora = random_lora(model.cfg, rank, seed=7)
    bank.write(2, lora)
    ids = torch.randint(0, 96, (2, 8))
    positions = torch.arange(8).expand(2, 8)
    want = merged_hf(hf, lora)(ids).logits
    assert (model(ids, positions, plugs=bank.plugs([2, 2])) - want).abs().max() <= 1e-4  # uniform path
    mixed = model(ids, positions, plugs=bank.plugs([2, 0]))  # gathered path
    assert (mixed[0] - want[0]).abs().max() <= 1e-4


def test_partial_targets_touch_only_their_projections(setup):
    hf, model, bank, ids, positions = setup
    lora = random_lora(model.cfg, 2, seed=3, projections=("q_proj", "v_proj", "down_proj"))
    bank.write(1, lora)
    want = merged_hf(hf, lora)(ids).logits
    assert (model(ids, positions, plugs=bank.plugs([1] * 4)) - want).abs().max() <= 1e-4


def test_steering_adds_to_each_layer_output(setup):
    hf, model, bank, ids, positions = setup
    steer = torch.randn(model.cfg.num_layers, model.cfg.hidden_size) * 0.5
    bank.write(3, steer=steer)
    hooks = [
        layer.register_forward_hook(
            lambda m, i, out, v=steer[n]: (out[0] + v, *out[1:]) if isinstance(out, tuple) else out + v
        )
        for n, layer in enumerate(hf.model.layers)
    ]
    try:
        want = hf(ids).logits
    finally:
        for h in hooks:
            h.remove()
    assert (model(ids, positions, plugs=bank.plugs([3] * 4)) - want).abs().max() <= 1e-4


def test_a_row_does_not_see_its_neighbours(setup):
    _, model, bank, ids, positions = setup
    for slot in (1, 2, 3):
        bank.write(
            slot,
            random_lora(model.cfg, 3, seed=slot),
            steer=torch.randn(model.cfg.num_layers, model.cfg.hidden_size),
        )
    same = ids[:1].expand(4, -1)
    rows = [[1, 2, 3, 0], [1, 0, 0, 0], [1, 3, 3, 2], [1, 1, 2, 2]]
    outs = [model(same, positions, plugs=bank.plugs(r))[0] for r in rows]
    for out in outs[1:]:
        assert torch.equal(out, outs[0])


def test_clear_returns_a_slot_to_the_base(setup):
    _, model, bank, ids, positions = setup
    bank.write(1, random_lora(model.cfg, 4, 1))
    bank.clear(1)
    assert torch.equal(model(ids, positions, plugs=bank.plugs([1, 0, 1, 0])), model(ids, positions))


def test_bad_writes_are_refused_whole(setup):
    _, model, bank, _, _ = setup
    lora = random_lora(model.cfg, 4, 1)
    bank.write(1, lora)
    before = {g: t.clone() for g, t in bank.lora_a.items()}
    bad = dict(lora)
    bad[(0, "q_proj")] = (torch.randn(8, 64), torch.randn(64, 8))  # rank 8 > max_rank 4
    with pytest.raises(ValueError, match="do not fit"):
        bank.write(1, bad)
    with pytest.raises(ValueError, match="slot 0 is the base"):
        bank.write(0, lora)
    assert all(torch.equal(before[g], bank.lora_a[g]) for g in before)  # slot 1 untouched
