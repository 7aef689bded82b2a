"""What every forge shares: progress reports, cancellation, checkpoints and seeds.

A forge reports through a `Progress` (the CLI draws a bar from it, the server's job table keeps
the latest figures); cancelling it (Ctrl-C, a job's cancel) stops the forge at the next step,
after the trainer has saved a checkpoint, so running the same forge again resumes there.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lifecard.atomic import atomic_path


class ForgeError(ValueError):
    """Bad forge input (a profile, a data file, an option): one sentence naming it and the fix."""


class ForgeCancelled(Exception):
    """The forge was cancelled; its checkpoints are kept, so running it again resumes."""


Listener = Callable[[str, int, int, dict[str, Any]], None]  # (stage, done, total, figures)


class Progress:
    """Stages of known length, reported to a listener; `cancel()` may be called from any thread."""

    def __init__(self, listener: Listener | None = None):
        self.listener = listener
        self.stage, self.done, self.total = "", 0, 0
        self.figures: dict[str, Any] = {}
        self._cancel = threading.Event()

    def start(self, stage: str, total: int) -> None:
        self.stage, self.done, self.total, self.figures = stage, 0, total, {}
        self._report()

    def advance(self, n: int = 1, **figures: Any) -> None:
        self.check()
        self.done = min(self.done + n, self.total)
        self.figures.update(figures)
        self._report()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise ForgeCancelled(f"cancelled during {self.stage or 'the forge'}")

    def _report(self) -> None:
        if self.listener is not None:
            self.listener(self.stage, self.done, self.total, dict(self.figures))


class Checkpoints:
    """A folder of named checkpoints, each valid only for the recipe (`key`) that wrote it.

    Files are this process's own torch.save output (tensors, numbers, strings, lists, dicts) and are
    read back with `weights_only=True`, so a planted file cannot run code."""

    def __init__(self, folder: str | Path | None, key: dict[str, Any]):
        self.folder = Path(folder) if folder is not None else None
        self.key = digest(key)

    def load(self, name: str) -> dict[str, Any] | None:
        if self.folder is None or not (self.folder / f"{name}.pt").is_file():
            return None
        try:
            state = torch.load(self.folder / f"{name}.pt", weights_only=True)
        except Exception:  # a damaged checkpoint only costs the work it held
            return None
        return state if isinstance(state, dict) and state.get("key") == self.key else None

    def save(self, name: str, state: dict[str, Any]) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"{name}.pt") as tmp:
            torch.save({**state, "key": self.key}, tmp)


def digest(value: Any) -> str:
    """sha256 of a JSON-able value, canonical: the same recipe and data give the same digest."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
