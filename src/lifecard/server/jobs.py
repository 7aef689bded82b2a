"""Background jobs that make cards (forges), one at a time, kept as JSON files so they outlive a reload
of the page and a restart of the server.

    <folder>/<job id>.json      one job: its input, status, progress and result, rewritten atomically
    <folder>/<job id>/          its scratch space: forge checkpoints, an imported avatar, eval plots

A job is `queued`, then `running`, then `done`, `failed` or `cancelled`. One worker thread runs the
queue in order; `work(job, progress)` does the work and returns the card id it stored. Cancelling a
queued job ends it at once; a running one stops at its next progress step (the forge checks for it).
A job that was queued or running when the server stopped is queued again when it starts, and its
forge resumes from its checkpoints.

Progress is kept per stage (`stages`, in the order the forge reports them) with the latest figures
of the running stage. The job file is rewritten on every status change and at most once a second
while a stage advances; readers get the in-memory state, which is always current.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lifecard.atomic import write_atomic
from lifecard.forge.progress import ForgeCancelled, Progress

log = logging.getLogger("lifecard.server.jobs")

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
SAVE_EVERY_S = 1.0  # progress is written to disk at most this often (status changes at once)


class JobsFull(Exception):
    """Too many jobs are waiting (HTTP 429)."""


@dataclass
class Job:
    id: str
    owner: str
    kind: str  # "profile" (a profile from the form or the API) | "import" (a character card)
    name: str  # the persona's name, for lists
    card_id: str  # the id the card will have
    input: dict[str, Any]  # what the work needs to run again after a restart (profile, budget, seed)
    status: str = "queued"
    stage: str = ""
    done: int = 0
    total: int = 0
    figures: dict[str, Any] = field(default_factory=dict)  # the running stage's latest figures
    stages: list[dict[str, Any]] = field(default_factory=list)  # [{name, done, total}] in order
    expected_stages: int = 1  # an estimate, for the overall progress fraction
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)  # the card's `forge` and `eval`; plot names
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    restarts: int = 0  # how often a server restart interrupted it

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> float:
        """0…1 over all stages: finished stages count whole, the running one by its fraction."""
        if self.status == "done":
            return 1.0
        if not self.stages:
            return 0.0
        *before, last = self.stages
        current = last["done"] / last["total"] if last["total"] else 0.0
        expected = max(self.expected_stages, len(self.stages))
        return min(1.0, (len(before) + current) / expected)

    def public(self) -> dict[str, Any]:
        """The job as the API shows it (its input stays private to the worker)."""
        out = {k: v for k, v in asdict(self).items() if k != "input"}
        return out | {
            "object": "forge.job",
            "progress": round(self.progress, 4),
            "budget": self.input.get("budget"),
            "seed": self.input.get("seed"),
        }


Work = Callable[[Job, Progress], str]  # runs the job, returns the stored card's id


class Jobs:
    """The job table: submit, look up, cancel; one worker thread; every job persisted in `folder`."""

    def __init__(self, folder: str | Path, work: Work, *, max_waiting: int = 16, keep: int = 100):
        self.folder, self.work = Path(folder), work
        self.max_waiting, self.keep = max_waiting, keep
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._queue: deque[str] = deque()
        self._running: tuple[Job, Progress] | None = None
        self._user_cancelled: set[str] = set()
        self._saved_at: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._load()

    # --- reading ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def of(self, owner: str | None) -> list[Job]:
        """The jobs of `owner` (all jobs for None), newest first."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if owner is None or j.owner == owner]
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    def scratch(self, job: Job) -> Path:
        """The job's own folder (checkpoints, an avatar, plots)."""
        return self.folder / job.id

    @property
    def waiting(self) -> int:
        return len(self._queue)

    # --- changing --------------------------------------------------------------------------------

    def submit(
        self, owner: str, kind: str, name: str, card_id: str, input: dict[str, Any], expected_stages: int = 1
    ) -> Job:
        with self._lock:
            if len(self._queue) >= self.max_waiting:
                raise JobsFull(f"{len(self._queue)} forge jobs are waiting already: try again when one ends")
            job = Job(
                id="job_" + secrets.token_hex(8),
                owner=owner,
                kind=kind,
                name=name,
                card_id=card_id,
                input=input,
                expected_stages=expected_stages,
            )
            self._jobs[job.id] = job
            self._queue.append(job.id)
            self._save(job)
            self._prune(owner)
            self._lock.notify_all()
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one ends now, a running one at its next step; a finished one stays."""
        with self._lock:
            job = self._jobs[job_id]
            if job.status == "queued":
                with contextlib.suppress(ValueError):
                    self._queue.remove(job_id)
                self._end(job, "cancelled", None)
            elif job.status == "running" and self._running is not None and self._running[0] is job:
                self._user_cancelled.add(job_id)
                self._running[1].cancel()
            return job

    # --- the worker ------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._serve, name="lifecard-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker: the running job stops at its next step and is queued again (it resumes
        from its checkpoints when the server starts next), queued jobs stay queued."""
        with self._lock:
            self._stopping = True
            if self._running is not None:
                self._running[1].cancel()
            self._lock.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is queued or running (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue or self._running is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._jobs[self._queue.popleft()]
                progress = Progress(lambda *report, job=job: self._report(job, *report))
                self._running = (job, progress)
                job.status, job.started, job.error = "running", time.time(), None
                job.stage, job.done, job.total, job.figures, job.stages = "", 0, 0, {}, []
                self._save(job)
            try:
                card_id = self.work(job, progress)
            except ForgeCancelled:
                with self._lock:
                    if job.id in self._user_cancelled:
                        self._end(job, "cancelled", None)
                    else:  # the server is stopping: run it again next time
                        job.status, job.restarts = "queued", job.restarts + 1
                        self._save(job)
            except Exception as e:
                message = str(e).splitlines()[0] if str(e) else type(e).__name__
                if not isinstance(e, ValueError):  # bad input is the caller's; anything else is ours
                    log.exception("forge job %s failed", job.id)
                with self._lock:
                    self._end(job, "failed", message)
            else:
                with self._lock:
                    job.card_id = card_id
                    self._end(job, "done", None)
            finally:
                with self._lock:
                    self._running = None
                    self._user_cancelled.discard(job.id)
                    self._lock.notify_all()

    def _report(self, job: Job, stage: str, done: int, total: int, figures: dict[str, Any]) -> None:
        """Progress listener (on the worker thread)."""
        with self._lock:
            if not job.stages or job.stages[-1]["name"] != stage:
                job.stages.append({"name": stage, "done": done, "total": total})
            job.stages[-1] |= {"done": done, "total": total}
            job.stage, job.done, job.total, job.figures = stage, done, total, _plain(figures)
            if time.monotonic() - self._saved_at.get(job.id, 0.0) >= SAVE_EVERY_S:
                self._save(job)

    def _end(self, job: Job, status: str, error: str | None) -> None:
        """Finish a job (caller holds the lock); its scratch folder goes unless it holds plots."""
        job.status, job.error, job.finished = status, error, time.time()
        self._save(job)
        scratch = self.scratch(job)
        if status != "done":
            shutil.rmtree(scratch, ignore_errors=True)
        else:  # keep only what the result shows
            for child in scratch.iterdir() if scratch.is_dir() else []:
                if child.name != "plots":
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
        self._lock.notify_all()

    # --- the files -------------------------------------------------------------------------------

    def _save(self, job: Job) -> None:
        self._saved_at[job.id] = time.monotonic()
        try:
            text = json.dumps(asdict(job), ensure_ascii=False, separators=(",", ":"))
            write_atomic(self.folder / f"{job.id}.json", text)
        except OSError as e:  # a full disk must not stop the forge; the job is still served from memory
            log.warning("forge job %s could not be saved: %s", job.id, e)

    def _load(self) -> None:
        for leftover in self.folder.glob(".*.tmp"):  # an atomic write a crash interrupted
            leftover.unlink(missing_ok=True)
        for path in sorted(self.folder.glob("job_*.json")):
            try:
                job = Job(**json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as e:
                log.warning("forge job file %s is unreadable (%s): skipped", path.name, e)
                continue
            self._jobs[job.id] = job
        for job in sorted(self._jobs.values(), key=lambda j: j.created):
            if job.is_active:  # interrupted by a stop: queue it again, in the order it came
                if job.status == "running":
                    job.restarts += 1
                job.status = "queued"
                self._queue.append(job.id)
                self._save(job)

    def _prune(self, owner: str) -> None:
        """Forget the oldest finished jobs of `owner` beyond `keep` (caller holds the lock)."""
        finished = sorted(
            (j for j in self._jobs.values() if j.owner == owner and not j.is_active), key=lambda j: j.created
        )
        for job in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job.id]
            self._saved_at.pop(job.id, None)
            (self.folder / f"{job.id}.json").unlink(missing_ok=True)
            shutil.rmtree(self.scratch(job), ignore_errors=True)


def _plain(figures: dict[str, Any]) -> dict[str, Any]:
    """Figures as JSON values: numbers rounded (NaN and infinities as null, which JSON can carry),
    anything else as text."""
    out: dict[str, Any] = {}
    for k, v in figures.items():
        if isinstance(v, bool) or v is None or isinstance(v, str | int):
            out[k] = v
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            out[k] = str(v)
            continue
        out[k] = round(x, 6) if math.isfinite(x) else None
    return out
