"""Beam search bookkeeping for one prompt, step for step the same as Hugging Face transformers 5.x
`generate(num_beams=N, do_sample=False, length_penalty=L, early_stopping=False)`.

The engine owns the model and the KV cache; this class only decides. Each step the engine hands
in the last-position logits of the N live beams, reorders its cache rows by the returned parent
indices and feeds the returned tokens:

    search = BeamSearch(num_beams=4, length_penalty=1.0, eos_ids={2}, max_new_tokens=64)
    logits = forward(prompt repeated 4 times)          # [4, V]
    while True:
        parents, tokens = search.step(logits)          # [4], [4]
        if search.is_done:
            break
        cache.reorder(parents)
        logits = forward(tokens)                       # [4, V]
    generated = search.best()
"""

from __future__ import annotations

from collections.abc import Set

import torch
from torch import Tensor

# Hugging Face's "minus infinity" for scores: large but finite, so sums and ranks stay defined.
_EXCLUDED = -1.0e9


class BeamSearch:
    """Semantics (t = tokens generated after this step, counting the step's token; V = vocab):

    - live beams b = 0..N-1 carry a running score s_b = Σ log p(token) over their generated
      tokens. At the start every beam holds the prompt, so s_0 = 0 and s_b = -1e9 for b ≥ 1:
      only one copy of the prompt competes.
    - a step scores all N·V continuations s_b + log_softmax(logits_b)_v (float32) and keeps the
      top K = (1 + max(1, |eos_ids|))·N by torch.topk (its order breaks ties), so at least N of
      them do not end on EOS.
    - a candidate finishes if its token is in eos_ids or t = max_new_tokens. Only candidates
      ranked in the top N of the K may enter the finished pool, with score s / t ** L (t
      includes the EOS token, excludes the prompt); the pool keeps the best N ever seen.
    - the N best unfinished candidates become the next live beams (finished ones are pushed
      down by -1e9, as Hugging Face does).
    - the search ends when t = max_new_tokens, or, once the pool holds N hypotheses, when the
      best live beam cannot beat the worst of them at its current length:
      s_0 / t ** L ≤ min(pool) (Hugging Face's `early_stopping=False` heuristic).
    - the answer is the best hypothesis in the pool, EOS included when it ended on one.
    """

    def __init__(
        self,
        num_beams: int,
        length_penalty: float,
        eos_ids: Set[int],
        max_new_tokens: int,
        device: torch.device | str = "cpu",
    ) -> None:
        if num_beams < 1:
            raise ValueError(f"num_beams must be ≥ 1, got {num_beams}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be ≥ 1, got {max_new_tokens}")
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.max_new_tokens = max_new_tokens
        self.device = torch.device(device)
        self._eos_ids = torch.tensor(sorted(eos_ids), dtype=torch.long, device=device)
        self._num_candidates = (1 + max(1, len(eos_ids))) * num_beams

        self._live_tokens = torch.zeros(num_beams, 0, dtype=torch.long, device=device)  # [N, t]
        self._live_scores = torch.full((num_beams,), _EXCLUDED, device=device)  # [N]
        self._live_scores[0] = 0.0
        self._pool_tokens: list[list[int]] = [[] for _ in range(num_beams)]
        self._pool_scores = torch.full((num_beams,), _EXCLUDED, device=device)  # [N], best first
        self._pool_is_finished = torch.zeros(num_beams, dtype=torch.bool, device=device)  # [N]
        self.is_done = False

    @property
    def num_generated(self) -> int:
        return self._live_tokens.shape[1]

    def step(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Advance one token. logits [N, V] of the live beams (row b continues beam b).

        Returns (parents [N], tokens [N]), int64 on `device`: next step's beam i is the old beam
        parents[i] followed by tokens[i]. Call only while not `is_done`.
        """
        if self.is_done:
            raise RuntimeError("beam search is done: read best() instead of stepping")
        logprobs = torch.log_softmax(logits.detach().to(self.device, torch.float32), dim=-1)  # [N, V]
        vocab_size = logprobs.shape[-1]
        t = self.num_generated + 1

        totals = (logprobs + self._live_scores[:, None]).reshape(-1)  # [N·V]
        scores, flat = torch.topk(totals, k=self._num_candidates)  # [K], best first
        parents, tokens = flat // vocab_size, flat % vocab_size
        sequences = torch.cat([self._live_tokens[parents], tokens[:, None]], dim=1)  # [K, t]
        is_finished = torch.isin(tokens, self._eos_ids) | (t >= self.max_new_tokens)  # [K]

        self._update_pool(sequences, scores, is_finished, t)

        live_scores = scores + is_finished.float() * _EXCLUDED
        keep = torch.topk(live_scores, k=self.num_beams).indices  # [N]
        self._live_tokens = sequences[keep]
        self._live_scores = live_scores[keep]
        self.is_done = bool(is_finished.all()) or not self._can_improve(t)
        return parents[keep], tokens[keep]

    def best(self) -> list[int]:
        """Generated token ids (no prompt) of the best finished hypothesis."""
        if not self.is_done:
            raise RuntimeError("beam search is still running: step until is_done before best()")
        return self._pool_tokens[0]

    @property
    def best_score(self) -> float:
        """The best hypothesis's Σ log p / length ** length_penalty (HF's `sequences_scores`)."""
        return float(self._pool_scores[0])

    def _update_pool(self, sequences: Tensor, scores: Tensor, is_finished: Tensor, t: int) -> None:
        """Merge this step's finished candidates among the top N into the pool of the best N."""
        enters = is_finished & (torch.arange(len(scores), device=self.device) < self.num_beams)  # [K]
        candidate_scores = scores / (t**self.length_penalty) + (~enters) * _EXCLUDED
        merged_scores = torch.cat([self._pool_scores, candidate_scores])  # [N + K]
        merged_is_finished = torch.cat([self._pool_is_finished, enters])
        merged_tokens = self._pool_tokens + sequences.tolist()
        keep = torch.topk(merged_scores, k=self.num_beams).indices  # [N]
        self._pool_scores = merged_scores[keep]
        self._pool_is_finished = merged_is_finished[keep]
        self._pool_tokens = [merged_tokens[i] for i in keep.tolist()]

    def _can_improve(self, t: int) -> bool:
        """Could the best live beam, ended now, still beat the worst pooled hypothesis? A pool
        slot not yet holding a finished hypothesis counts as -1e9, as in Hugging Face."""
        best_live = self._live_scores[0] / (t**self.length_penalty)
        worst_pooled = torch.where(self._pool_is_finished, self._pool_scores.min(), _EXCLUDED)  # [N]
        return bool((best_live > worst_pooled).any())
