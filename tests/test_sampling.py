"""The sampler against its definitions: each filter on hand-made distributions and against Hugging
Face's logits processors, per-row parameters, seeds, empirical frequencies, and stop strings."""

from __future__ import annotations

import math
import random
import re
from typing import cast

import pytest
import torch
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from lifecard.engine.sampling import (
    RowState,
    SamplingParams,
    StopMatcher,
    apply_min_p,
    apply_repetition_penalty,
    apply_temperature,
    apply_top_k,
    apply_top_p,
    sample_next,
)

PROBS = [0.5, 0.3, 0.15, 0.05]


def logits_of(probs: list[float]) -> torch.Tensor:
    return torch.tensor(probs).log()[None, :]  # [1, V]


def kept(filtered: torch.Tensor) -> list[int]:
    return torch.isfinite(filtered[0]).nonzero().flatten().tolist()


def rows_for(params: list[SamplingParams], vocab_size: int, prompt: tuple[int, ...] = ()) -> list[RowState]:
    return [RowState.start(p, prompt, vocab_size, "cpu") for p in params]


# --- parameters ----------------------------------------------------------------------------


def test_defaults_are_common_chat_settings() -> None:
    p = SamplingParams()
    assert (p.temperature, p.top_p, p.top_k, p.min_p, p.repetition_penalty) == (0.7, 0.9, 0, 0.0, 1.0)
    assert p.num_beams == 1 and not p.is_greedy
    assert SamplingParams(temperature=0).is_greedy


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", -0.1, "temperature must be ≥ 0, got -0.1"),
        ("temperature", math.nan, "temperature must be ≥ 0, got nan"),
        ("top_k", -1, "top_k must be an integer ≥ 0 (0 = off), got -1"),
        ("top_k", 2.5, "top_k must be an integer ≥ 0 (0 = off), got 2.5"),
        ("top_p", 1.5, "top_p must be in (0, 1], got 1.5"),
        ("top_p", 0.0, "top_p must be in (0, 1], got 0.0"),
        ("min_p", 1.2, "min_p must be in [0, 1], got 1.2"),
        ("repetition_penalty", 0.0, "repetition_penalty must be > 0 (1 = off), got 0.0"),
        ("seed", -3, "seed must be None or an integer in [0, 2**64), got -3"),
        ("max_tokens", 0, "max_tokens must be an integer ≥ 1, got 0"),
        ("stop", ("ok", ""), "stop must be a tuple of non-empty strings, got ('ok', '')"),
        ("stop", ["</s>"], "stop must be a tuple of non-empty strings, got ['</s>']"),
        ("num_beams", 0, "num_beams must be an integer ≥ 1, got 0"),
        ("length_penalty", math.inf, "length_penalty must be a finite number, got inf"),
    ],
)
def test_invalid_params_name_field_value_and_range(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SamplingParams(**{field: value})  # type: ignore[arg-type]


def test_beam_search_needs_greedy_without_penalty() -> None:
    with pytest.raises(ValueError, match=r"num_beams=4 needs temperature 0, got 0\.7"):
        SamplingParams(num_beams=4)
    with pytest.raises(ValueError, match=r"num_beams=2 needs repetition_penalty 1, got 1\.2"):
        SamplingParams(num_beams=2, temperature=0, repetition_penalty=1.2)
    SamplingParams(num_beams=4, temperature=0)  # top_p's default is simply ignored


# --- each filter against its definition ----------------------------------------------------


@pytest.mark.parametrize(("k", "expected"), [(1, [0]), (3, [0, 1, 2]), (0, [0, 1, 2, 3]), (10, [0, 1, 2, 3])])
def test_top_k_keeps_the_k_most_likely(k: int, expected: list[int]) -> None:
    assert kept(apply_top_k(logits_of(PROBS), torch.tensor([k]))) == expected


def test_top_k_keeps_every_token_tied_with_the_kth() -> None:
    assert kept(apply_top_k(torch.tensor([[1.0, 2.0, 2.0, 0.0]]), torch.tensor([1]))) == [1, 2]
    assert kept(apply_top_k(torch.tensor([[1.0, 2.0, 2.0, 1.0]]), torch.tensor([3]))) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0.01, [0]), (0.49, [0]), (0.51, [0, 1]), (0.79, [0, 1]), (0.81, [0, 1, 2]), (0.96, [0, 1, 2, 3])],
)
def test_top_p_keeps_the_smallest_set_reaching_p(p: float, expected: list[int]) -> None:
    assert kept(apply_top_p(logits_of(PROBS), torch.tensor([p]))) == expected


def test_top_p_boundary_and_ties_on_exact_probabilities() -> None:
    uniform = torch.zeros(1, 4)  # probabilities exactly 0.25: the sums are exact
    assert kept(apply_top_p(uniform, torch.tensor([0.5]))) == [0, 1]  # reaches p exactly: stop there
    assert kept(apply_top_p(uniform, torch.tensor([0.5001]))) == [0, 1, 2]
    assert kept(apply_top_p(uniform, torch.tensor([1.0]))) == [0, 1, 2, 3]


def test_top_p_one_is_off_even_for_a_negligible_tail() -> None:
    logits = torch.tensor([[30.0, 0.0, -30.0]])  # the mass above the tail rounds to 1.0
    assert kept(apply_top_p(logits, torch.tensor([1.0]))) == [0, 1, 2]


@pytest.mark.parametrize(
    ("min_p", "expected"), [(0.0, [0, 1, 2, 3]), (0.29, [0, 1, 2]), (0.31, [0, 1]), (0.61, [0]), (1.0, [0])]
)
def test_min_p_removes_tokens_below_min_p_times_the_top(min_p: float, expected: list[int]) -> None:
    assert kept(apply_min_p(logits_of(PROBS), torch.tensor([min_p]))) == expected


def test_temperature_divides_logits() -> None:
    logits = torch.tensor([[1.0, -2.0], [1.0, -2.0]])
    out = apply_temperature(logits, torch.tensor([0.5, 2.0]))
    assert torch.equal(out, torch.tensor([[2.0, -4.0], [0.5, -1.0]]))


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits() -> None:
    logits = torch.tensor([[2.0, -2.0, 2.0, -2.0]] * 3)
    seen = torch.tensor([[True, True, False, False]] * 3)
    out = apply_repetition_penalty(logits, seen, torch.tensor([2.0, 0.5, 1.0]))
    assert torch.equal(out[0], torch.tensor([1.0, -4.0, 2.0, -2.0]))  # > 1: seen tokens less likely
    assert torch.equal(out[1], torch.tensor([4.0, -1.0, 2.0, -2.0]))  # < 1: seen tokens more likely
    assert torch.equal(out[2], logits[2])  # 1: off


def test_filters_match_hugging_face_processors() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 50) * 3  # [b, V]
    ids = cast(torch.LongTensor, torch.randint(0, 50, (6, 12)))  # HF types input_ids as LongTensor
    for k in (1, 5, 20):
        expected = TopKLogitsWarper(top_k=k)(ids, logits)
        assert torch.equal(apply_top_k(logits, torch.full((6,), k)), expected)
    for p in (0.1, 0.5, 0.9, 0.99):
        expected = TopPLogitsWarper(top_p=p)(ids, logits)
        assert torch.equal(apply_top_p(logits, torch.full((6,), p)), expected)
    for m in (0.01, 0.1, 0.5):
        expected = MinPLogitsWarper(min_p=m)(ids, logits)
        assert torch.equal(apply_min_p(logits, torch.full((6,), m)), expected)
    seen = torch.zeros(6, 50, dtype=torch.bool).scatter(1, ids, True)
    for penalty in (0.7, 1.3):
        expected = RepetitionPenaltyLogitsProcessor(penalty)(ids, logits.clone())
        assert torch.equal(apply_repetition_penalty(logits, seen, torch.full((6,), penalty)), expected)


def test_each_row_uses_its_own_parameters() -> None:
    torch.manual_seed(1)
    logits = torch.randn(4, 30) * 2
    cases = [
        (apply_top_k, torch.tensor([0, 1, 5, 30])),
        (apply_top_p, torch.tensor([1.0, 0.3, 0.8, 0.05])),
        (apply_min_p, torch.tensor([0.0, 0.05, 0.5, 1.0])),
        (apply_temperature, torch.tensor([0.3, 1.0, 1.7, 5.0])),
    ]
    for fn, values in cases:
        batched = fn(logits, values)
        for i in range(4):
            assert torch.equal(batched[i], fn(logits[i : i + 1], values[i : i + 1])[0])


# --- sample_next -----------------------------------------------------------------------------


def test_greedy_takes_the_first_largest_logit() -> None:
    rows = rows_for([SamplingParams(temperature=0)] * 2, 3)
    tokens = sample_next(torch.tensor([[1.0, 3.0, 3.0], [5.0, 0.0, 5.0]]), rows)
    assert tokens.tolist() == [1, 0]


def test_a_seeded_row_draws_the_same_tokens_alone_or_in_a_batch() -> None:
    torch.manual_seed(2)
    steps = torch.randn(25, 4, 40)  # [step, b, V]
    seeded = SamplingParams(temperature=0.9, top_k=20, top_p=0.95, min_p=0.02, seed=1234)
    others = [SamplingParams(temperature=0), SamplingParams(temperature=1.3, seed=7), SamplingParams()]

    alone = rows_for([seeded], 40)
    batch = rows_for([others[0], seeded, *others[1:]], 40)
    alone_tokens = [sample_next(step[1:2], alone)[0].item() for step in steps]
    batch_tokens = [sample_next(step, batch)[1].item() for step in steps]
    assert alone_tokens == batch_tokens

    again = rows_for([seeded], 40)
    assert [sample_next(step[1:2], again)[0].item() for step in steps] == alone_tokens
    other_seed = rows_for([SamplingParams(temperature=0.9, top_k=20, top_p=0.95, min_p=0.02, seed=99)], 40)
    assert [sample_next(step[1:2], other_seed)[0].item() for step in steps] != alone_tokens


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def draw_counts(params: SamplingParams, logits: torch.Tensor, n: int) -> torch.Tensor:
    rows = rows_for([params], logits.shape[-1])
    draws = torch.tensor([sample_next(logits, rows)[0].item() for _ in range(n)])
    return torch.bincount(draws, minlength=logits.shape[-1]).float()


def test_draws_follow_softmax_of_logits_over_temperature() -> None:
    logits = torch.tensor([[1.0, 0.5, 0.0, -0.5, -1.0]])
    counts = draw_counts(SamplingParams(temperature=0.7, top_p=1.0, seed=3), logits, 4000)
    # 18.47 is the 0.1% tail of chi-square with 4 degrees of freedom
    assert chi_square(counts, (logits[0] / 0.7).softmax(-1)) < 18.47


def test_draws_follow_the_renormalised_truncated_distribution() -> None:
    logits = torch.tensor([[1.0, 0.5, 0.0, -0.5, -1.0]])
    counts = draw_counts(SamplingParams(temperature=1.0, top_k=3, top_p=1.0, seed=4), logits, 3000)
    assert counts[3:].sum() == 0
    assert chi_square(counts[:3], logits[0, :3].softmax(-1)) < 13.82  # 0.1% tail, 2 degrees


def test_repetition_penalty_covers_prompt_and_output() -> None:
    # greedy with penalty 10: the prompt's token 0 and each emitted token lose to the next best
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    rows = rows_for([SamplingParams(temperature=0, repetition_penalty=10.0)], 4, prompt=(0,))
    assert [sample_next(logits, rows)[0].item() for _ in range(3)] == [1, 2, 3]
    plain = rows_for([SamplingParams(temperature=0)], 4, prompt=(0,))
    assert sample_next(logits, plain).tolist() == [0]


# --- stop strings --------------------------------------------------------------------------


def stream(matcher: StopMatcher, pieces: list[str]) -> tuple[str, bool]:
    out, stopped = "", False
    for piece in pieces:
        text, stopped = matcher.push(piece)
        out += text
    return out + matcher.flush(), stopped


def test_stop_string_split_across_pieces_is_never_emitted() -> None:
    matcher = StopMatcher(["</s>"])
    assert matcher.push("Hello</") == ("Hello", False)
    assert matcher.push("s") == ("", False)
    assert matcher.push("> world") == ("", True)
    assert matcher.push("more") == ("", True)
    assert matcher.flush() == ""


def test_held_text_that_turns_out_not_to_stop_is_emitted() -> None:
    matcher = StopMatcher(["</s>"])
    assert matcher.push("a<") == ("a", False)
    assert matcher.push("b") == ("<b", False)
    assert matcher.push("x</") == ("x", False)
    assert matcher.flush() == "</"


def test_earliest_stop_string_wins_and_overlaps_are_caught() -> None:
    assert stream(StopMatcher(["world", "lo w"]), ["hello", " world"]) == ("hel", True)
    assert stream(StopMatcher(["abc"]), ["aab", "c"]) == ("a", True)
    assert stream(StopMatcher([]), ["any", "thing"]) == ("anything", False)


def test_stop_matcher_emits_exactly_the_text_before_the_first_stop() -> None:
    rng = random.Random(0)
    stops = ["ab", "bba", "c"]
    for _ in range(300):
        text = "".join(rng.choice("abd") for _ in range(rng.randint(0, 12))) + rng.choice(["", "c"])
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 4))))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        first = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        expected = (text, False) if first < 0 else (text[:first], True)
        assert stream(StopMatcher(stops), pieces) == expected, pieces
