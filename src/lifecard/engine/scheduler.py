"""Continuous batching: requests join and leave the running batch at every decode step.

Semantics of one `step()`:
  1. rows whose job was cancelled leave at once (their cache row is reused);
  2. waiting jobs join while rows are free: each mounts its cards (an exact mix, in its own bank
     slot) and is prefilled into its own cache row, then picks its first token;
  3. every running row decodes one token in a single forward, each row on its own slot;
  4. rows that finished leave, handing their Completion to `on_done`.
Running rows always occupy cache rows 0..n-1: a leaving row is replaced by the last one.

One thread (the worker) owns the model, the bank and the cache; `submit` and `cancel` are the only
calls other threads make, and they only touch the queue under a lock.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from lifecard.cards.compose import Mix
from lifecard.engine.generate import Completion, Engine, Request, Row
from lifecard.engine.sampling import sample_next
from lifecard.model.llama import KVCache

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The waiting queue is at its bound; the caller should retry later."""


_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    request: Request
    mix: Mix = ()
    on_text: Callable[[str], None] = lambda text: None  # called on the worker thread
    on_done: Callable[[Completion | None, BaseException | None], None] = lambda out, err: None
    id: int = field(default_factory=lambda: next(_ids))
    cancelled: bool = False
    slot: int = 0
    row: Row | None = None
    submitted: float = field(default_factory=time.monotonic)
    first_token: float | None = None


@dataclass
class Stats:
    waiting: int = 0
    running: int = 0
    tokens: int = 0  # generated since start
    steps: int = 0
    finished: int = 0
    cancelled: int = 0
    failed: int = 0


class Scheduler:
    def __init__(self, engine: Engine, max_rows: int = 16, max_queue: int = 64, max_len: int | None = None):
        self.engine = engine
        self.max_queue = max_queue
        self.max_len = min(max_len or engine.cfg.max_position_embeddings, engine.cfg.max_position_embeddings)
        self.cache = KVCache(engine.cfg, max_rows, self.max_len, engine.dtype, engine.device)
        self.running: list[Job] = []  # running[j] owns cache row j
        self.waiting: deque[Job] = deque()
        self.stats = Stats()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stop = False

    @property
    def max_rows(self) -> int:
        return self.cache.k.shape[1]

    # --- any thread -----------------------------------------------------------------------------

    def submit(self, job: Job) -> Job:
        """Queue a job; raises QueueFull when `max_queue` jobs already wait."""
        with self._lock:
            if len(self.waiting) >= self.max_queue:
                raise QueueFull(f"{len(self.waiting)} requests are waiting already: retry in a moment")
            self.waiting.append(job)
            self.stats.waiting = len(self.waiting)
            self._wake.notify()
        return job

    def cancel(self, job: Job) -> None:
        """Stop a job (a client went away); its row is freed at the next step."""
        job.cancelled = True
        with self._lock:
            self._wake.notify()

    def start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="lifecard-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()

    # --- the worker thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stop and not self.waiting and not self.running:
                    self._wake.wait()
                if self._stop:
                    break
            try:
                self.step()
            except Exception as e:  # a step that raises fails the rows it ran, not the whole server
                log.exception("a scheduler step failed; its %d rows are dropped", len(self.running))
                failed, self.running = self.running, []
                for job in failed:
                    self._release(job)
                    self._finish(job, None, e)
        for job in [*self.running, *self.waiting]:  # shutting down: nobody is left hanging
            self._finish(job, None, RuntimeError("the server is shutting down"))

    @torch.inference_mode()
    def step(self) -> None:
        self._drop_cancelled()
        self._admit()
        if self.running:
            self._decode()
        self.stats.steps += 1

    def _drop_cancelled(self) -> None:
        with self._lock:
            for job in [j for j in self.waiting if j.cancelled]:
                self.waiting.remove(job)
                self.stats.cancelled += 1
            self.stats.waiting = len(self.waiting)
        gone = [j for j, job in enumerate(self.running) if job.cancelled]
        self.stats.cancelled += len(gone)
        self._leave(gone, notify=False)

    def _admit(self) -> None:
        """Move waiting jobs into free rows: mount, prefill (all joiners in one forward), first token."""
        joining: list[Job] = []
        with self._lock:
            while self.waiting and len(self.running) + len(joining) < self.max_rows:
                joining.append(self.waiting.popleft())
            self.stats.waiting = len(self.waiting)
        ready = []
        for job in joining:
            try:
                job.slot = self.engine.mount(job.mix).slot if job.mix else 0
                request = replace(job.request, slot=job.slot)
                job.row = self.engine.start_row(job.id, request, self.max_len)
                ready.append(job)
            except Exception as e:  # a bad request fails alone; the batch runs on
                self._release(job)
                self._finish(job, None, e)
        if not ready:
            return
        start = len(self.running)
        self.running.extend(ready)
        rows = [job.row for job in ready if job.row is not None]
        logits = self.engine.prefill(rows, self.cache.rows(start, start + len(rows)))
        self._choose(ready, logits, first=True)

    def _decode(self) -> None:
        rows = [job.row for job in self.running if job.row is not None]
        logits = self.engine.decode(rows, self.cache.rows(0, len(rows)))
        self._choose(self.running, logits)

    def _choose(self, jobs: list[Job], logits: torch.Tensor, first: bool = False) -> None:
        """Sample one token per job, stream its text, and let finished jobs leave."""
        rows = [job.row for job in jobs if job.row is not None]
        tokens = sample_next(logits, [row.sampler for row in rows]).tolist()
        done = []
        for job, row, token in zip(jobs, rows, tokens, strict=True):
            text, finished = self.engine.advance(row, token)
            self.stats.tokens += 1
            if first:
                job.first_token = time.monotonic()
            if text:
                job.on_text(text)
            if finished:
                done.append(job)
        self._leave([self.running.index(job) for job in done], notify=True)

    def _leave(self, indices: list[int], notify: bool) -> None:
        """Remove running[j] for j in indices, filling each hole with the last row (cache included)."""
        for j in sorted(indices, reverse=True):
            job = self.running[j]
            last = len(self.running) - 1
            if j != last:
                moved = self.running[last]
                assert moved.row is not None
                self.cache.move_row(last, j, moved.row.length)
                self.running[j] = moved
            self.running.pop()
            self._release(job)
            if notify and job.row is not None:
                self.stats.finished += 1
                self._finish(job, job.row.out, None)

    def _release(self, job: Job) -> None:
        if job.slot:
            self.engine.unmount(job.slot)
            job.slot = 0

    def _finish(self, job: Job, out: Completion | None, error: BaseException | None) -> None:
        if error is not None:
            self.stats.failed += 1
        with contextlib.suppress(Exception):  # a broken callback must not stop the other rows
            job.on_done(out, error)
