"""Beam search and greedy decoding against Hugging Face `generate` on a tiny random Llama.

The loop here has no KV cache: each step re-runs every live beam's whole sequence, and reorders
the sequences by the parent indices that `BeamSearch.step` returns, as the engine reorders its cache.
"""

from __future__ import annotations

from collections.abc import Set

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lifecard.engine.beam import BeamSearch
from lifecard.engine.sampling import RowState, SamplingParams, sample_next

VOCAB = 64
PROMPT_LEN = 5
MAX_NEW = 8


def tiny_llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        # wide weights make peaked next-token distributions, so near-ties that float noise could
        # flip between a cached and an uncached forward are unlikely
        initializer_range=0.2,
        bos_token_id=None,
        eos_token_id=None,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module", params=[0, 1, 2])
def model_and_prompt(request: pytest.FixtureRequest) -> tuple[LlamaForCausalLM, torch.Tensor]:
    seed = request.param
    prompt = torch.randint(3, VOCAB, (1, PROMPT_LEN), generator=torch.Generator().manual_seed(seed))
    return tiny_llama(seed), prompt


@torch.no_grad()
def last_logits(model: LlamaForCausalLM, sequences: torch.Tensor) -> torch.Tensor:
    return model(sequences).logits[:, -1]  # [b, V]


@torch.no_grad()
def hf_generate(model: LlamaForCausalLM, prompt: torch.Tensor, **kwargs: object) -> list[int]:
    out = model.generate(prompt, do_sample=False, max_new_tokens=MAX_NEW, pad_token_id=0, **kwargs)
    return out[0, prompt.shape[1] :].tolist()


def our_beam_search(
    model: LlamaForCausalLM, prompt: torch.Tensor, num_beams: int, length_penalty: float, eos_ids: Set[int]
) -> BeamSearch:
    search = BeamSearch(num_beams, length_penalty, eos_ids, MAX_NEW)
    sequences = prompt.repeat(num_beams, 1)  # [N, prompt_len]
    while True:
        parents, tokens = search.step(last_logits(model, sequences))
        if search.is_done:
            return search
        sequences = torch.cat([sequences[parents], tokens[:, None]], dim=1)


def liked_token(model: LlamaForCausalLM, prompt: torch.Tensor) -> int:
    """The second greedy token: as EOS it makes beams finish early, and at different lengths."""
    return hf_generate(model, prompt)[1]


@pytest.mark.parametrize("length_penalty", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("num_beams", [2, 4])
def test_beam_search_matches_hf_generate(
    model_and_prompt: tuple[LlamaForCausalLM, torch.Tensor], num_beams: int, length_penalty: float
) -> None:
    model, prompt = model_and_prompt
    eos = liked_token(model, prompt)
    expected = hf_generate(
        model, prompt, num_beams=num_beams, length_penalty=length_penalty, eos_token_id=eos
    )
    assert our_beam_search(model, prompt, num_beams, length_penalty, {eos}).best() == expected


def test_beam_search_matches_hf_with_two_eos_ids() -> None:
    model = tiny_llama(3)
    prompt = torch.randint(3, VOCAB, (1, PROMPT_LEN), generator=torch.Generator().manual_seed(3))
    greedy = hf_generate(model, prompt)
    eos_ids = [greedy[2], greedy[4]]
    expected = hf_generate(model, prompt, num_beams=3, eos_token_id=eos_ids)
    assert our_beam_search(model, prompt, 3, 1.0, set(eos_ids)).best() == expected


def test_beam_search_stops_early_when_no_live_beam_can_win() -> None:
    model = tiny_llama(0)
    prompt = torch.randint(3, VOCAB, (1, PROMPT_LEN), generator=torch.Generator().manual_seed(0))
    eos = liked_token(model, prompt)
    search = our_beam_search(model, prompt, 2, 0.5, {eos})
    assert search.num_generated < MAX_NEW
    out = model.generate(
        prompt,
        num_beams=2,
        length_penalty=0.5,
        eos_token_id=eos,
        do_sample=False,
        max_new_tokens=MAX_NEW,
        pad_token_id=0,
        return_dict_in_generate=True,
        output_scores=True,
    )
    assert search.best() == out.sequences[0, PROMPT_LEN:].tolist()
    assert search.best()[-1] == eos
    assert search.best_score == pytest.approx(float(out.sequences_scores[0]), abs=1e-5)


def test_only_one_copy_of_the_prompt_competes_at_the_first_step() -> None:
    search = BeamSearch(num_beams=3, length_penalty=1.0, eos_ids={0}, max_new_tokens=4)
    logits = torch.tensor([[0.0, 3.0, 2.0, 1.0, -1.0]]).repeat(3, 1)  # identical rows
    parents, tokens = search.step(logits)
    assert parents.tolist() == [0, 0, 0]
    assert tokens.tolist() == [1, 2, 3]


def test_enough_candidates_are_kept_for_live_beams_whatever_the_eos_count() -> None:
    search = BeamSearch(num_beams=2, length_penalty=1.0, eos_ids={0, 1}, max_new_tokens=4)
    search.step(torch.tensor([[2.0, 1.0, 0.5, 3.0, 0.0, 0.0]]).repeat(2, 1))
    # both live beams now rank both EOS tokens far first: 4 of the top 4 candidates end on EOS
    _, tokens = search.step(torch.tensor([[10.0, 10.0, 0.0, 0.0, 0.0, 0.0]]).repeat(2, 1))
    assert set(tokens.tolist()).isdisjoint({0, 1})  # the live beams still do not end on EOS


def test_stepping_a_finished_search_or_reading_a_running_one_is_an_error() -> None:
    search = BeamSearch(num_beams=2, length_penalty=1.0, eos_ids={0}, max_new_tokens=1)
    with pytest.raises(RuntimeError, match="still running"):
        search.best()
    search.step(torch.tensor([[0.0, 2.0, 1.0]]).repeat(2, 1))
    assert search.is_done and search.best() == [1]
    with pytest.raises(RuntimeError, match="done"):
        search.step(torch.zeros(2, 3))


def test_greedy_sample_next_matches_hf_greedy(
    model_and_prompt: tuple[LlamaForCausalLM, torch.Tensor],
) -> None:
    """Two rows in one batch: plain greedy, and greedy with a repetition penalty (HF applies it
    over the prompt and the output too)."""
    model, prompt = model_and_prompt
    params = [SamplingParams(temperature=0), SamplingParams(temperature=0, repetition_penalty=1.5)]
    rows = [RowState.start(p, prompt[0].tolist(), VOCAB, "cpu") for p in params]
    sequences = prompt.repeat(2, 1)  # [2, prompt_len]
    for _ in range(MAX_NEW):
        tokens = sample_next(last_logits(model, sequences), rows)
        sequences = torch.cat([sequences, tokens[:, None]], dim=1)
    assert sequences[0, PROMPT_LEN:].tolist() == hf_generate(model, prompt)
    assert sequences[1, PROMPT_LEN:].tolist() == hf_generate(model, prompt, repetition_penalty=1.5)
