"""The engine on a tiny random Llama with a tiny byte-level BPE: a ragged batch equals each request
alone, greedy and beam outputs equal Hugging Face `generate`, finish reasons, stop strings,
streaming, LoRA slots next to base rows, and clear refusals of bad prompts."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from tiny import SIZES
from tokenizers import Tokenizer as Backend
from transformers import LlamaConfig, LlamaForCausalLM

from lifecard.engine.generate import Completion, Engine, Request
from lifecard.engine.sampling import SamplingParams
from lifecard.model.config import ModelConfig
from lifecard.model.llama import Transformer
from lifecard.model.sockets import SocketBank
from lifecard.model.tokenizer import Tokenizer

CONTEXT = SIZES["max_position_embeddings"]  # 64
EOS_IDS = (0, 2)  # <|endoftext|>, <|im_end|>
PROMPTS = ["the quick brown fox", "Hello", "def main(argv):\n    return", "你好，世界"]


@pytest.fixture(scope="module")
def backend(tiny_bpe: Backend) -> Backend:
    """conftest's 320-token byte-level BPE (SmolLM2's pre-tokenizer); ids 0-2 are its specials."""
    return tiny_bpe


@pytest.fixture(scope="module")
def hf(backend: Backend) -> LlamaForCausalLM:
    """The tiny Llama of tests/tiny.py with the tokenizer's vocabulary; wider weights than HF's
    default make next-token distributions peaked enough that float noise never flips a choice."""
    torch.manual_seed(0)
    config = LlamaConfig(
        **(SIZES | {"vocab_size": backend.get_vocab_size()}),
        initializer_range=0.1,
        bos_token_id=None,
        eos_token_id=list(EOS_IDS),
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def model(hf: LlamaForCausalLM) -> Transformer:
    return Transformer.from_state_dict(ModelConfig.from_hf(hf.config.to_dict()), hf.state_dict())


def make_engine(model: Transformer, backend: Backend, eos_ids: Sequence[int] = EOS_IDS) -> Engine:
    tokenizer = Tokenizer(
        backend, bos_id=None, eos_id=eos_ids[-1], eos_ids=eos_ids, add_bos=False, chat_template=None
    )
    return Engine(model, tokenizer, SocketBank(model.cfg, num_slots=3, max_rank=4, dtype=torch.float32))


@pytest.fixture
def engine(model: Transformer, backend: Backend) -> Engine:
    return make_engine(model, backend)


def greedy(max_tokens: int = 16, **kw: object) -> SamplingParams:
    return SamplingParams(temperature=0, max_tokens=max_tokens, **kw)  # type: ignore[arg-type]


def hf_generate(hf: LlamaForCausalLM, prompt: list[int], eos_ids: Sequence[int] = EOS_IDS, **kw: object):
    out = hf.generate(
        torch.tensor([prompt]), do_sample=False, pad_token_id=0, eos_token_id=list(eos_ids), **kw
    )
    return out[0, len(prompt) :].tolist()


def alone(engine: Engine, request: Request) -> Completion:
    return engine.generate([request])[0]


def same(a: Completion, b: Completion) -> bool:
    return (a.tokens, a.text, a.finish_reason) == (b.tokens, b.text, b.finish_reason)


# --- a batch is each request alone -------------------------------------------------------------


def ragged_requests(engine: Engine) -> list[Request]:
    enc = engine.tokenizer.encode
    return [
        Request(enc(PROMPTS[0]), greedy(20)),
        Request(enc(PROMPTS[1]), SamplingParams(temperature=0.9, seed=1, max_tokens=7)),
        Request(enc(PROMPTS[2]), greedy(3, repetition_penalty=1.3)),
        Request(enc(PROMPTS[3]), SamplingParams(temperature=1.2, top_k=20, top_p=0.8, seed=7, max_tokens=25)),
        Request(enc(PROMPTS[0]), SamplingParams(temperature=0.8, min_p=0.05, seed=3, max_tokens=12)),
        Request(enc(PROMPTS[1]) * 3, greedy(1)),
    ]


def test_ragged_batch_equals_each_request_alone(engine: Engine) -> None:
    requests = ragged_requests(engine)
    assert len({len(r.prompt) for r in requests}) >= 4  # really ragged
    batch = engine.generate(requests)
    for i, (request, got) in enumerate(zip(requests, batch, strict=True)):
        want = alone(engine, request)
        assert same(got, want), f"row {i}: {got} != {want}"
        assert got.finish_reason == "stop" or len(got.tokens) == request.params.max_tokens


def test_seeded_sampling_is_reproducible_and_seed_dependent(engine: Engine) -> None:
    prompt = engine.tokenizer.encode(PROMPTS[0])
    runs = [
        alone(engine, Request(prompt, SamplingParams(temperature=1.0, seed=s, max_tokens=12)))
        for s in (5, 5, 6)
    ]
    assert runs[0].tokens == runs[1].tokens
    assert runs[0].tokens != runs[2].tokens


def test_rows_leaving_early_do_not_disturb_the_others(model: Transformer, backend: Backend) -> None:
    """Rows in the middle of the batch end first (max_tokens, EOS, a stop string); the cache rows of
    the survivors are compacted around them and must still be theirs."""
    plain = make_engine(model, backend)
    long_prompt = plain.tokenizer.encode(PROMPTS[2])
    reference = alone(plain, Request(long_prompt, greedy(20)))
    eos = reference.tokens[3]  # makes a greedy row on this prompt end on its 4th token
    assert eos not in reference.tokens[:3]
    engine = make_engine(model, backend, eos_ids=(eos,))
    enc = engine.tokenizer.encode
    survivor = alone(engine, Request(enc(PROMPTS[0]), greedy(24)))
    assert len(survivor.tokens) == 24  # runs to the end, past every row that leaves
    stop, k = clean_stop(engine, survivor)
    requests = [
        Request(enc(PROMPTS[0]), greedy(24)),
        Request(enc(PROMPTS[1]), greedy(2)),  # leaves after 2 tokens
        Request(long_prompt, greedy(20)),  # leaves on EOS after 4
        Request(enc(PROMPTS[3]), SamplingParams(temperature=1.0, seed=11, max_tokens=24)),
        Request(enc(PROMPTS[0]), greedy(24, stop=(stop,))),  # leaves on a stop string
        Request(enc(PROMPTS[0]), greedy(1)),  # leaves at once
    ]
    batch = engine.generate(requests)
    assert batch[2].tokens == reference.tokens[:4] and batch[2].finish_reason == "stop"
    assert batch[4].finish_reason == "stop" and len(batch[4].tokens) <= k + 3 < 24
    assert [len(c.tokens) for c in (batch[1], batch[5])] == [2, 1]
    for i, request in enumerate(requests):
        assert same(batch[i], alone(engine, request)), f"row {i}"
    assert same(batch[0], survivor)


# --- against Hugging Face generate -------------------------------------------------------------


def test_greedy_equals_hf_generate(engine: Engine, hf: LlamaForCausalLM) -> None:
    prompts = [engine.tokenizer.encode(p) for p in PROMPTS]
    batch = engine.generate([Request(p, greedy(24)) for p in prompts])  # one ragged batch
    for prompt, got in zip(prompts, batch, strict=True):
        assert got.tokens == hf_generate(hf, prompt, max_new_tokens=24)


def test_greedy_with_repetition_penalty_equals_hf_generate(engine: Engine, hf: LlamaForCausalLM) -> None:
    prompt = engine.tokenizer.encode(PROMPTS[0])
    got = alone(engine, Request(prompt, greedy(24, repetition_penalty=1.4)))
    assert got.tokens == hf_generate(hf, prompt, max_new_tokens=24, repetition_penalty=1.4)


@pytest.mark.parametrize(("num_beams", "length_penalty"), [(2, 1.0), (3, 0.5), (4, 2.0)])
def test_beam_requests_equal_hf_generate(
    model: Transformer, backend: Backend, hf: LlamaForCausalLM, num_beams: int, length_penalty: float
) -> None:
    plain = make_engine(model, backend)
    prompt = plain.tokenizer.encode(PROMPTS[0])
    eos = alone(plain, Request(prompt, greedy(4))).tokens[1]  # a liked token: beams end at different lengths
    engine = make_engine(model, backend, eos_ids=(eos,))
    params = SamplingParams(temperature=0, num_beams=num_beams, length_penalty=length_penalty, max_tokens=10)
    # a beam request travels through generate() next to ordinary rows
    other = Request(engine.tokenizer.encode(PROMPTS[1]), greedy(5))
    got, beside = engine.generate([Request(prompt, params), other])
    want = hf_generate(
        hf, prompt, (eos,), num_beams=num_beams, length_penalty=length_penalty, max_new_tokens=10
    )
    assert got.tokens == want
    ended_on_eos = want[-1] == eos
    assert got.finish_reason == ("stop" if ended_on_eos else "length")
    assert got.text == engine.tokenizer.decode(want[:-1] if ended_on_eos else want)  # EOS is no text
    assert same(beside, alone(engine, other))


def test_beam_without_eos_runs_to_max_tokens(engine: Engine, hf: LlamaForCausalLM) -> None:
    prompt = engine.tokenizer.encode(PROMPTS[2])
    got = alone(engine, Request(prompt, SamplingParams(temperature=0, num_beams=3, max_tokens=8)))
    assert got.tokens == hf_generate(hf, prompt, num_beams=3, max_new_tokens=8)
    if got.tokens[-1] not in EOS_IDS:
        assert got.finish_reason == "length" and len(got.tokens) == 8


# --- finishing: stop strings, max_tokens, EOS, the context ----------------------------------------


def clean_stop(engine: Engine, out: Completion) -> tuple[str, int]:
    """A printable stop string (no U+FFFD from half a character) made of 2 or 3 adjacent tokens of
    `out`, so it spans a token boundary, and the index of its first token."""
    for k in range(2, len(out.tokens) - 1):
        for n in (2, 3):
            s = engine.tokenizer.decode(out.tokens[k : k + n])
            if len(s) >= 2 and s.isprintable() and "\ufffd" not in s and s in out.text:
                return s, k
    raise AssertionError(f"no clean stop string in {out.tokens}")


@pytest.mark.parametrize("prompt", PROMPTS[:3])
def test_stop_string_cuts_the_text(engine: Engine, prompt: str) -> None:
    ids = engine.tokenizer.encode(prompt)
    full = alone(engine, Request(ids, greedy(40)))
    stop, k = clean_stop(engine, full)
    cut = alone(engine, Request(ids, greedy(40, stop=("\x00never", stop))))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]
    assert stop not in cut.text
    assert cut.tokens == full.tokens[: len(cut.tokens)] and len(cut.tokens) <= k + 3


def test_stop_string_cuts_beam_text(engine: Engine) -> None:
    ids = engine.tokenizer.encode(PROMPTS[0])
    params = dict(temperature=0, num_beams=2, max_tokens=20)
    full = alone(engine, Request(ids, SamplingParams(**params)))  # type: ignore[arg-type]
    stop, _ = clean_stop(engine, full)
    cut = alone(engine, Request(ids, SamplingParams(**params, stop=(stop,))))  # type: ignore[arg-type]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]


def test_max_tokens_sets_length(engine: Engine) -> None:
    ids = engine.tokenizer.encode(PROMPTS[0])
    for n in (1, 5, 17):
        out = alone(engine, Request(ids, greedy(n)))
        assert len(out.tokens) == n and out.finish_reason == "length"
        assert out.text == engine.tokenizer.decode(out.tokens)


def test_eos_sets_stop_and_stays_out_of_the_text(model: Transformer, backend: Backend) -> None:
    ids = make_engine(model, backend).tokenizer.encode(PROMPTS[1])
    tokens = alone(make_engine(model, backend), Request(ids, greedy(12))).tokens
    k = next(k for k in range(2, 12) if tokens[k] not in tokens[:k])
    engine = make_engine(model, backend, eos_ids=(tokens[k],))
    for params in (greedy(12), greedy(12, stop=("\x00",))):
        out = alone(engine, Request(ids, params))
        assert out.tokens == tokens[: k + 1]  # EOS is the last token ...
        assert out.finish_reason == "stop"
        assert out.text == engine.tokenizer.decode(tokens[:k])  # ... but not part of the text


def test_the_context_ends_a_row_with_length(engine: Engine, hf: LlamaForCausalLM) -> None:
    prompt = (engine.tokenizer.encode(PROMPTS[2]) * 8)[: CONTEXT - 4]
    out = alone(engine, Request(prompt, greedy(50)))
    assert out.finish_reason == "length" and len(out.tokens) <= 5
    assert out.tokens == hf_generate(hf, prompt, max_new_tokens=len(out.tokens))
    beam = alone(engine, Request(prompt, SamplingParams(temperature=0, num_beams=2, max_tokens=50)))
    assert 1 <= len(beam.tokens) <= 5


# --- streaming ---------------------------------------------------------------------------------


def test_streamed_pieces_concatenate_to_the_completion(engine: Engine) -> None:
    requests = ragged_requests(engine)
    requests[0] = Request(requests[0].prompt, greedy(20, stop=("zz", "the")))
    finished = [Completion() for _ in requests]
    pieces: list[list[str]] = [[] for _ in requests]
    order = []
    for index, piece in engine.stream(requests, finished):
        assert piece  # nothing empty is yielded
        pieces[index].append(piece)
        order.append(index)
    assert len(set(order[: len(requests)])) > 1  # rows interleave
    for i, request in enumerate(requests):
        assert "".join(pieces[i]) == finished[i].text
        assert same(finished[i], alone(engine, request))
        for stop in request.params.stop:
            assert stop not in finished[i].text


def test_streamed_text_never_splits_a_character(engine: Engine) -> None:
    """A prompt of Chinese makes multi-byte characters likely; a piece never ends in half of one
    unless the model itself produced invalid bytes (then decode() shows U+FFFD as well)."""
    ids = engine.tokenizer.encode(PROMPTS[3])
    for seed in range(4):
        request = Request(ids, SamplingParams(temperature=1.5, seed=seed, max_tokens=30))
        pieces = [p for _, p in engine.stream([request])]
        out = alone(engine, request)
        assert "".join(pieces) == out.text
        assert out.text.count("\ufffd") <= engine.tokenizer.decode(out.tokens).count("\ufffd")


def test_stream_refuses_beam_requests(engine: Engine) -> None:
    request = Request(engine.tokenizer.encode("Hello"), SamplingParams(temperature=0, num_beams=2))
    with pytest.raises(ValueError, match="beam search"):
        next(iter(engine.stream([request])))


# --- LoRA slots --------------------------------------------------------------------------------


def random_lora(cfg: ModelConfig, seed: int) -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    shapes = cfg.projection_shapes()
    return {
        (layer, p): (
            torch.randn(4, shapes[p][1], generator=g) * 0.3,
            torch.randn(shapes[p][0], 4, generator=g) * 0.3,
        )
        for layer in range(cfg.num_layers)
        for p in ("q_proj", "v_proj", "o_proj", "down_proj")
    }


def test_lora_slot_alone_equals_in_a_batch_beside_base_rows(
    engine: Engine, hf: LlamaForCausalLM, model: Transformer
) -> None:
    lora = random_lora(model.cfg, seed=1)
    engine.bank.write(1, lora)
    engine.bank.write(
        2,
        steer=torch.randn(
            model.cfg.num_layers, model.cfg.hidden_size, generator=torch.Generator().manual_seed(2)
        ),
    )
    enc = engine.tokenizer.encode
    requests = [
        Request(enc(PROMPTS[0]), greedy(16), slot=0),
        Request(enc(PROMPTS[0]), greedy(16), slot=1),
        Request(enc(PROMPTS[2]), SamplingParams(temperature=1.0, seed=4, max_tokens=10), slot=1),
        Request(enc(PROMPTS[1]), greedy(12), slot=0),
        Request(enc(PROMPTS[3]), greedy(8), slot=2),
        Request(enc(PROMPTS[0]), SamplingParams(temperature=0, num_beams=2, max_tokens=8), slot=1),
    ]
    batch = engine.generate(requests)
    for i, request in enumerate(requests):
        assert same(batch[i], alone(engine, request)), f"row {i}"
    assert batch[1].tokens != batch[0].tokens  # the card changes the output ...
    assert batch[0].tokens == hf_generate(
        hf, requests[0].prompt, max_new_tokens=16
    )  # ... base rows stay base
    # the slot's output is the output of the base with B·A merged into its weights
    merged = LlamaForCausalLM(hf.config).eval().requires_grad_(False)
    merged.load_state_dict(hf.state_dict())
    names = {"q_proj": "self_attn.q_proj", "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj"}
    for (layer, proj), (a, b) in lora.items():
        merged.get_submodule(f"model.layers.{layer}.{names.get(proj, 'mlp.' + proj)}").weight += b @ a
    assert batch[1].tokens == hf_generate(merged, requests[1].prompt, max_new_tokens=16)
    assert batch[5].tokens == hf_generate(merged, requests[5].prompt, num_beams=2, max_new_tokens=8)


# --- refusals ----------------------------------------------------------------------------------


def test_empty_prompt_is_refused(engine: Engine) -> None:
    ok = Request(engine.tokenizer.encode("Hello"), greedy(2))
    for params in (greedy(4), SamplingParams(temperature=0, num_beams=2)):
        with pytest.raises(ValueError, match="prompt is empty"):
            engine.generate([ok, Request([], params)])
    with pytest.raises(ValueError, match="prompt is empty"):
        list(engine.stream([Request([])]))


def test_prompt_longer_than_the_context_is_refused(engine: Engine) -> None:
    too_long = [5] * CONTEXT
    for params in (greedy(4), SamplingParams(temperature=0, num_beams=2)):
        with pytest.raises(
            ValueError, match=rf"prompt has {CONTEXT} tokens; this model's context is {CONTEXT}"
        ):
            engine.generate([Request(too_long, params)])
    with pytest.raises(ValueError, match="context"):
        list(engine.stream([Request([5] * (CONTEXT + 10))]))
    # one token short of the context still runs, and ends on the context
    out = alone(engine, Request([5] * (CONTEXT - 1), greedy(20)))
    assert out.finish_reason == "length" and 1 <= len(out.tokens) <= 2


def test_an_empty_batch_gives_nothing(engine: Engine) -> None:
    assert engine.generate([]) == []
    assert list(engine.stream([])) == []


def test_bad_slot_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="slot 7 is not in this bank"):
        engine.generate([Request(engine.tokenizer.encode("Hello"), greedy(2), slot=7)])
