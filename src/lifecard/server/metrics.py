"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand.

Gauges are read from the scheduler and the mount table when scraped; the request counter is kept by
`CountRequests`, an ASGI wrapper that sees every response's status; tokens/s is the slope of the
scheduler's token count over the last `window` seconds, sampled once a second by the app.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# request paths as metric labels: ids folded away, so the label set stays small
_ROUTES = [
    (re.compile(r"^/v1/cards/[^/]+/file$"), "/v1/cards/{id}/file"),
    (re.compile(r"^/v1/cards/[^/]+$"), "/v1/cards/{id}"),
]
_KNOWN = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/cards", "/health", "/metrics"}


def route_label(path: str) -> str:
    if path in _KNOWN:
        return path
    for pattern, label in _ROUTES:
        if pattern.match(path):
            return label
    return "other"


class TokenRate:
    """Tokens per second over a sliding window of (time, total tokens) samples."""

    def __init__(self, window: float = 10.0):
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, total: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._samples.append((now, total))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    @property
    def per_second(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class RequestCounts:
    """HTTP responses by (method, route, status); shared between the event loop and scrapes."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self._lock = threading.Lock()

    def add(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._counts[(method, route_label(path), status)] += 1

    def snapshot(self) -> dict[tuple[str, str, int], int]:
        with self._lock:
            return dict(self._counts)


class CountRequests:
    """ASGI middleware: counts every HTTP response by route and status into `counts`."""

    def __init__(self, app: Any, counts: RequestCounts):
        self.app, self.counts = app, counts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # if the app dies before answering, the server answers 500

        async def record(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            self.counts.add(scope["method"], scope["path"], status)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(x: float) -> str:
    return repr(float(x)) if isinstance(x, float) else str(x)


class Exposition:
    """Collects metric families and renders them: HELP, TYPE, then one line per sample."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help: str, samples: Iterable[tuple[dict[str, Any], float]]
    ) -> None:
        self.lines += [f"# HELP {name} {help}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            label = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{label}}} {_number(value)}" if label else f"{name} {_number(value)}")

    def one(self, name: str, kind: str, help: str, value: float) -> None:
        self.family(name, kind, help, [({}, value)])

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(
    scheduler: Any, mounts: Any, bank: Any, stored_cards: int, rate: TokenRate, requests: RequestCounts
) -> str:
    """The /metrics page: scheduler, mount table and request figures."""
    stats = scheduler.stats
    users = [m.users for m in list(mounts.by_slot.values())]
    out = Exposition()
    out.one("lifecard_queue_waiting", "gauge", "Requests waiting for a batch row.", len(scheduler.waiting))
    out.one("lifecard_queue_max", "gauge", "Requests that may wait before 429.", scheduler.max_queue)
    out.one(
        "lifecard_rows_active", "gauge", "Requests decoding in the running batch.", len(scheduler.running)
    )
    out.one("lifecard_rows_max", "gauge", "Rows of the running batch.", scheduler.max_rows)
    out.one("lifecard_tokens_generated_total", "counter", "Tokens generated since start.", stats.tokens)
    window = f"Tokens generated per second over the last {rate.window:g} s."
    out.one("lifecard_tokens_per_second", "gauge", window, rate.per_second)
    out.one("lifecard_decode_steps_total", "counter", "Scheduler steps since start.", stats.steps)
    jobs: list[tuple[dict[str, Any], float]] = [
        ({"outcome": "finished"}, stats.finished),
        ({"outcome": "cancelled"}, stats.cancelled),
        ({"outcome": "failed"}, stats.failed),
    ]
    out.family("lifecard_jobs_total", "counter", "Generation jobs by how they ended.", jobs)
    out.one("lifecard_cards_mounted", "gauge", "Card mixes in the socket bank.", len(users))
    in_use = sum(1 for u in users if u > 0)
    out.one("lifecard_cards_mounted_in_use", "gauge", "Mounted mixes a running request holds.", in_use)
    hits, evictions = mounts.hits, mounts.evictions
    out.one("lifecard_mount_cache_hits_total", "counter", "Mounts served by a mix already mounted.", hits)
    out.one(
        "lifecard_mount_cache_evictions_total", "counter", "Idle mounts cleared from the bank.", evictions
    )
    out.one("lifecard_bank_bytes", "gauge", "Bytes of the socket bank.", bank.nbytes)
    out.one("lifecard_cards_stored", "gauge", "Cards in the card store.", stored_cards)
    counts = sorted(requests.snapshot().items())
    out.family(
        "lifecard_http_requests_total",
        "counter",
        "HTTP responses by method, route and status.",
        [({"method": m, "route": r, "status": s}, n) for (m, r, s), n in counts],
    )
    return out.render()
