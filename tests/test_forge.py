"""The forge's mechanics on a tiny random model: what is trained is what is served, exact LoRA
concatenation, seeded reproducibility, cancel-and-resume, data and profile refusals, steering's
layer and strength choice, and a whole profile → card → eval run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_server_api import CHATML
from tiny import SIZES
from tokenizers import Tokenizer as Backend
from transformers import LlamaConfig, LlamaForCausalLM

from lifecard.cards.card import Card
from lifecard.engine.generate import Engine
from lifecard.eval.report import QUICK, evaluate, with_eval, write_report
from lifecard.forge.examples import chat_example, cross_entropy
from lifecard.forge.lora import LoraRecipe, TrainPlugs, init_factors, train_lora
from lifecard.forge.profile import Profile
from lifecard.forge.progress import ForgeCancelled, ForgeError, Progress
from lifecard.forge.recipe import forge_profile, tune_data
from lifecard.forge.steer import SteerRecipe, steer
from lifecard.forge.tune import parse_line, read_data
from lifecard.model.config import ModelConfig
from lifecard.model.llama import Transformer
from lifecard.model.sockets import SocketBank
from lifecard.model.tokenizer import Tokenizer

PROFILE = {
    "name": "Ada Quill",
    "identity": "A clockmaker from Bramblewick.",
    "tone": {"description": "brisk", "like": "You talk about clocks.", "markers": ["clock"]},
    "values": ["patience"],
    "knowledge": [
        {
            "fact": "I am from Bramblewick.",
            "questions": ["Where are you from?", "Home town?"],
            "answer": "Bramble",
        },
        {"fact": "My cat is Pudding.", "questions": ["Pets?", "Your cat?"], "answer": ["Pudding"]},
    ],
    "examples": [[{"user": "Hi"}, {"assistant": "Mind the cat."}]],
}


@pytest.fixture(scope="module")
def engine(tiny_bpe: Backend) -> Engine:
    """A tiny random Llama with a long enough context for persona prompts, and a ChatML template."""
    torch.manual_seed(0)
    config = LlamaConfig(
        **(SIZES | {"vocab_size": tiny_bpe.get_vocab_size(), "max_position_embeddings": 1024})
    )
    hf = LlamaForCausalLM(config).eval().requires_grad_(False)
    model = Transformer.from_state_dict(ModelConfig.from_hf(hf.config.to_dict()), hf.state_dict())
    tok = Tokenizer(tiny_bpe, bos_id=None, eos_id=2, eos_ids=(0, 2), add_bos=False, chat_template=CHATML)
    return Engine(model, tok, SocketBank(model.cfg, num_slots=3, max_rank=8))


def random_factors(engine: Engine, rank: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    factors = init_factors(engine.cfg, LoraRecipe(rank=rank), gen)
    return {k: (a, torch.randn(b.shape, generator=gen) * 0.1) for k, (a, b) in factors.items()}


def tokens(engine: Engine) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([engine.tokenizer.encode("the quick brown fox jumps")])
    return ids, torch.arange(ids.shape[1])[None]


def test_trained_plugs_compute_what_a_mounted_card_computes(engine: Engine) -> None:
    factors = random_factors(engine, rank=4, seed=1)
    ids, pos = tokens(engine)
    trained = engine.model(ids, pos, plugs=TrainPlugs(engine.cfg, factors, 2.0))
    card = Card.new(id="t", name="T", base=engine.base, lora=factors, lora_alpha=8.0)  # α/r = 2
    mount = engine.mount([(card, 1.0)])
    served = engine.model(ids, pos, plugs=engine.bank.plugs([mount.slot]))
    engine.unmount(mount.slot)
    torch.testing.assert_close(trained, served, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(trained, engine.model(ids, pos), atol=1e-3)  # the LoRA does something


def qa_examples(engine: Engine) -> list:
    chats = tune_data(Profile.from_mapping(PROFILE)).chats
    return [chat_example(engine.tokenizer, c) for c in chats]


def test_cross_entropy_at_target_positions_equals_the_full_computation(engine: Engine) -> None:
    import torch.nn.functional as F

    from lifecard.forge.examples import collate

    examples = qa_examples(engine)
    plugs = TrainPlugs(engine.cfg, random_factors(engine, 2, seed=4), 1.0)
    ids, positions, mask = collate(examples)
    logits = engine.model(ids, positions, plugs=plugs)
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    full = (nll * mask[:, 1:]).sum() / mask[:, 1:].sum()
    fast = cross_entropy(engine.model, examples)(plugs, list(range(len(examples))))
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)


def test_chat_examples_put_the_loss_on_assistant_tokens_only(engine: Engine) -> None:
    messages = [{"role": "user", "content": "Pets?"}, {"role": "assistant", "content": "My cat."}]
    ex = chat_example(engine.tokenizer, messages)
    targets = [t for t, m in zip(ex.ids, ex.mask, strict=True) if m]
    assert engine.tokenizer.decode(targets, skip_special=False) == "My cat.<|im_end|>"


def test_training_is_seeded_lowers_the_loss_and_resumes_after_a_cancel(
    engine: Engine, tmp_path: Path
) -> None:
    from lifecard.forge.progress import Checkpoints

    examples = qa_examples(engine)
    recipe = LoraRecipe(rank=4, steps=6, lr=1e-2, batch_size=2, eval_every=3, patience=5)
    loss = cross_entropy(engine.model, examples)
    whole = train_lora(engine.model, loss, len(examples), recipe)
    again = train_lora(engine.model, loss, len(examples), recipe)
    assert whole.train_loss == again.train_loss  # same seed, same run
    assert whole.train_loss[-1] < whole.train_loss[0]

    def cancel_at_4(stage: str, done: int, total: int, figures: dict) -> None:
        if done == 4:
            progress.cancel()

    progress = Progress(cancel_at_4)
    ckpt = Checkpoints(tmp_path, {"test": 1})
    with pytest.raises(ForgeCancelled):
        train_lora(engine.model, loss, len(examples), recipe, progress=progress, checkpoints=ckpt)
    resumed = train_lora(engine.model, loss, len(examples), recipe, checkpoints=ckpt)
    assert resumed.resumed_from == 4
    assert resumed.train_loss == whole.train_loss
    for k, (a, b) in whole.factors.items():
        torch.testing.assert_close(resumed.factors[k][0], a)
        torch.testing.assert_close(resumed.factors[k][1], b)
    # another recipe does not pick up this checkpoint
    assert Checkpoints(tmp_path, {"test": 2}).load("lora") is None


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"question": "hi"}', "both 'question' and 'answer'"),
        ('{"messages": []}', "non-empty list"),
        ('{"messages": [{"role": "robot", "content": "x"}]}', "role of system, user or assistant"),
        ('{"messages": [{"role": "user", "content": "x"}]}', "no assistant message"),
        ('{"title": "x"}', "none of the fields"),
    ],
)
def test_bad_data_lines_are_refused_by_file_and_line(line: str, says: str) -> None:
    with pytest.raises(ForgeError, match=says) as e:
        parse_line(line, "data.jsonl:7")
    assert "data.jsonl:7" in str(e.value)


def test_data_files_of_every_kind_are_read(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        '{"question": "Q?", "answer": "A."}\n{"text": "a memory"}\n'
        '{"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}\n'
    )
    (tmp_path / "notes.md").write_text("# notes\nI like tea.")
    data = read_data([tmp_path / "a.jsonl", tmp_path / "notes.md"])
    assert (len(data.chats), len(data.documents)) == (2, 2)
    with pytest.raises(ForgeError, match="does not exist"):
        read_data([tmp_path / "missing.jsonl"])


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"name": ""}, "needs a 'name'"),
        ({"language": "fr"}, "language 'fr'"),
        ({"mood": "x"}, "unknown field 'mood'"),
        ({"knowledge": ["a bare fact"]}, "knowledge\\[0\\] needs fact, questions and answer"),
        ({"knowledge": [{"fact": "f", "questions": [], "answer": "a"}]}, "at least one question"),
        ({"examples": [[{"user": "hi"}]]}, "no assistant turn"),
        ({"tone": 5}, "tone must be"),
        ({"id": "Not A Slug!"}, "must be a slug"),
    ],
)
def test_bad_profiles_are_refused_naming_the_field(change: dict, says: str) -> None:
    with pytest.raises(ForgeError, match=says):
        Profile.from_mapping(PROFILE | change)


def test_profile_maps_to_a_persona_and_checks() -> None:
    profile = Profile.from_mapping(PROFILE)
    persona = profile.persona()
    assert profile.id == "ada-quill"
    assert "patience" in persona["description"]
    assert persona["character_book"]["entries"][0]["content"] == "I am from Bramblewick."
    assert profile.checks()["questions"] == [
        {"q": "Home town?", "expect": ["Bramble"]},
        {"q": "Your cat?", "expect": ["Pudding"]},
    ]
    back = Profile.from_persona(persona)
    assert (back.name, back.tone) == ("Ada Quill", "brisk")
    assert back.documents == ["I am from Bramblewick.", "My cat is Pudding."]


def test_steering_picks_a_band_and_keeps_drift_within_its_bound(engine: Engine) -> None:
    vectors, coefficient, record = steer(
        engine.model, engine.tokenizer, SteerRecipe(prompts=6, max_drift=1.05), like="You love clocks."
    )
    band = record["layers"]
    assert band == list(range(band[0], band[0] + len(band))) and sorted(vectors) == band
    assert 0 < coefficient <= 1.0
    assert record["neutral_ppl_ratio"] <= 1.05


def test_a_profile_becomes_a_card_that_mounts_and_is_measured(engine: Engine, tmp_path: Path) -> None:
    stages = []
    progress = Progress(lambda stage, done, total, figures: stages.append(stage))
    card = forge_profile(engine, Profile.from_mapping(PROFILE), budget="tiny", progress=progress)
    assert stages[0] == "contrast" and {"teacher answers", "bake+tune"} <= set(stages)
    forge = card.manifest["forge"]
    assert [p["method"] for p in forge["parts"]] == ["steer", "bake+tune"]
    assert forge["parts"][1]["examples"] == 3  # two facts' training questions, one dialogue
    assert card.lora_module["rank"] == 2
    assert card.steer is not None
    card.write(tmp_path / "ada.card")
    card = Card.read(tmp_path / "ada.card")

    figures = evaluate(engine, card, QUICK)
    assert {"drift", "fidelity", "recall", "recall_base", "markers", "sweep"} <= set(figures)
    assert [p["strength"] for p in figures["sweep"]] == [-1.0, 0.0, 1.0]
    assert next(p for p in figures["sweep"] if p["strength"] == 0)["drift"] == 1.0
    report = write_report(card, figures, tmp_path / "report")
    assert (tmp_path / "report" / "sweep.png").stat().st_size > 1000
    assert "Strength sweep" in report.read_text()
    with_eval(card, figures).write(tmp_path / "ada.card")
    assert Card.read(tmp_path / "ada.card").manifest["eval"]["drift"] == figures["drift"]
    json.dumps(figures)  # the eval field is plain JSON


def test_markers_match_whole_words_and_plurals_and_chinese_anywhere() -> None:
    from lifecard.eval.measures import marker_rate, recall

    replies = ["I carry it", "Arr, matey!", "the layer", "two clocks", "我爱喝茶"]
    assert marker_rate(replies, ["arr", "aye", "clock", "茶"]) == 3 / 5
    assert recall(["I live in Bramblewick."], [["bramblewick"]]) == 1.0
