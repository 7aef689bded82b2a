"""Serving under load: the real `lifecard serve` (a subprocess on a free loopback port, a temporary
card store) with N generated rank-16 LoRA cards uploaded over HTTP, driven by real HTTP streaming
clients (httpx, `/v1/chat/completions` with `stream`, `temperature` 0 and `ignore_eos`, so every
request generates exactly `--tokens` tokens).

    .venv/bin/python benchmarks/serve.py [--dtype bfloat16] [--clients 1,4,16,32] [--cards 16] [--tokens 32]
    .venv/bin/python benchmarks/serve.py --soak 600           # 16 clients in a loop, random hang-ups

For each number of clients, one wave of that many concurrent streams: all on the base; all on
cards (client i on card i mod N); and the same requests one at a time. Aggregate decode tokens/s =
all tokens of the wave / its wall time; time to first token = from sending the request to the first
chunk with text. Waves are interleaved and repeated, tokens/s is the median, TTFT percentiles are
over every request of all repeats. Server memory is its VmRSS after warm-up and at the end.

The issue's targets: 16 clients on 16 different cards ≥ 5× the same 16 requests one at a time, and
≥ 0.85× 16 clients on the base. `--soak`: no lost or corrupted streams, RSS growth after warm-up ≤ 5%.
This machine is shared and noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import torch
from cards import TARGETS
from common import random_lora

from lifecard.cards.base import BaseInfo
from lifecard.cards.card import Card
from lifecard.model.files import DEFAULT_MODEL_FILE, load_model_files, model_fingerprint

BIN = Path(sys.executable).parent
PROMPTS = [
    "Tell me about the sea.",
    "What is a clock?",
    "Describe a walk in the forest.",
    "Why do people keep diaries?",
]
RSS_EVERY = 10.0  # seconds between RSS samples in the soak


# --- the server ----------------------------------------------------------------------------------


def make_cards(args: argparse.Namespace, folder: Path) -> list[Path]:
    """N cards against the base the server will load: its config and fingerprint, read the way
    `Engine.load` reads them; a random LoRA of rank `--rank` on the `--targets` projections."""
    cfg, weights, _, _ = load_model_files(args.model, getattr(torch, args.dtype))
    del weights
    model_id = DEFAULT_MODEL_FILE if args.model is None else Path(args.model).name
    base = BaseInfo.from_config(cfg, model_id, model_fingerprint(args.model))
    targets = TARGETS[args.targets]
    paths = []
    for i in range(args.cards):
        lora = {
            k: v
            for k, v in random_lora(cfg, args.rank, seed=100 + i, scale=args.scale).items()
            if k[1] in targets
        }
        card = Card.new(id=f"bench{i}", name=f"Bench {i}", base=base, lora=lora, lora_alpha=float(args.rank))
        path = folder / f"bench{i}.card"
        card.write(path)
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> Any:
    """For the server's process: a SIGTERM when this script dies, however it dies (Linux only)."""
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, called after it
    except OSError:
        return None
    return lambda: libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_server(args: argparse.Namespace, store: Path, log: Any) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [str(BIN / "lifecard"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--dtype", args.dtype, "--store", str(store), "--max-rows", str(args.max_rows)]
    if args.model is not None:
        cmd += ["--model", args.model]
    if args.context is not None:
        cmd += ["--context", str(args.context)]
    if args.card_memory is not None:
        cmd += ["--card-memory", str(args.card_memory)]
    env = dict(os.environ)
    if args.threads is not None:
        env["OMP_NUM_THREADS"] = str(args.threads)
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=_die_with_parent(),
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen, url: str, timeout: float) -> dict[str, Any]:
    """The server's /health once it answers 200; an error if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} while starting")
        with contextlib.suppress(httpx.HTTPError):
            reply = httpx.get(f"{url}/health", timeout=2)
            if reply.status_code == 200:
                return dict(reply.json())
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /health within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # uvicorn shuts down gracefully on SIGTERM
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def upload(url: str, paths: list[Path]) -> list[str]:
    ids = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for path in paths:
            reply = client.post(
                "/v1/cards", content=path.read_bytes(), headers={"Content-Type": "application/octet-stream"}
            )
            if reply.status_code != 201:
                raise RuntimeError(f"uploading {path.name}: HTTP {reply.status_code} {reply.text[:300]}")
            ids.append(str(reply.json()["id"]))
        listed = {m["id"] for m in client.get("/v1/models").json()["data"]}
    missing = set(ids) - listed
    if missing:
        raise RuntimeError(f"uploaded cards missing from /v1/models: {sorted(missing)}")
    return ids


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process (VmRSS), in MB; None where /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def metrics(url: str) -> dict[str, float]:
    """/metrics as {'name{labels}': value}."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


# --- the clients ---------------------------------------------------------------------------------


@dataclass
class Reply:
    outcome: str = "failed"  # ok | cut (we hung up on purpose) | failed (no answer) | corrupt
    tokens: int = 0  # usage.completion_tokens
    prompt_tokens: int = 0
    chunks: int = 0  # chunks carrying text
    ttft: float | None = None  # seconds from sending to the first chunk with text
    text: str = ""
    error: str = ""


@dataclass
class Plan:
    fields: dict[str, Any]  # model (and cards) of the request
    prompt: str
    cut_after: int | None = None  # hang up after this many text chunks


async def chat(client: httpx.AsyncClient, plan: Plan, tokens: int, timeout: float) -> Reply:
    """One streaming chat completion, checked: SSE `data:` lines of JSON chunks of one id, no error
    event, `finish_reason` length, exactly `tokens` completion tokens, then [DONE] and nothing after."""
    body = {
        **plan.fields,
        "messages": [{"role": "user", "content": plan.prompt}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    r = Reply()
    parts: list[str] = []
    done, finish, reply_id = False, None, None

    def corrupt(why: str) -> Reply:
        r.outcome, r.error = "corrupt", why
        return r

    t0 = time.perf_counter()
    try:
        async with (
            asyncio.timeout(timeout),
            client.stream("POST", "/v1/chat/completions", json=body) as resp,
        ):
            if resp.status_code != 200:
                await resp.aread()
                r.error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                return r
            async for line in resp.aiter_lines():
                if not line:
                    continue
                if done:
                    return corrupt(f"data after [DONE]: {line[:80]!r}")
                if not line.startswith("data: "):
                    return corrupt(f"not an SSE data line: {line[:80]!r}")
                data = line.removeprefix("data: ")
                if data == "[DONE]":
                    done = True
                    continue
                event = json.loads(data)
                if "error" in event:
                    return corrupt(f"error event: {event['error'].get('message')}")
                reply_id = reply_id or event.get("id")
                if event.get("id") != reply_id or event.get("object") != "chat.completion.chunk":
                    return corrupt(f"a chunk of another id or object: {data[:120]}")
                if event.get("usage"):
                    r.tokens = int(event["usage"]["completion_tokens"])
                    r.prompt_tokens = int(event["usage"]["prompt_tokens"])
                for choice in event.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        r.ttft = time.perf_counter() - t0 if r.ttft is None else r.ttft
                        r.chunks += 1
                        parts.append(content)
                    finish = choice.get("finish_reason") or finish
                if plan.cut_after is not None and r.chunks >= plan.cut_after:
                    r.outcome = "cut"  # leaving `client.stream` closes the connection mid-stream
                    return r
    except TimeoutError:
        r.error = f"no complete answer within {timeout:.0f} s"
        return r
    except httpx.HTTPError as e:
        r.error = f"{type(e).__name__}: {e}"
        return r
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # bad JSON or a chunk of the wrong shape
        return corrupt(f"malformed chunk: {type(e).__name__}: {e}")
    r.text = "".join(parts)
    if not done:
        return corrupt("the stream ended without [DONE]")
    if finish != "length" or r.tokens != tokens:
        return corrupt(f"finish_reason {finish!r} after {r.tokens} tokens, expected 'length' after {tokens}")
    r.outcome = "ok"
    return r


@dataclass
class Cell:
    """One (clients, mode) of the table, over all repeats."""

    tps: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)


async def wave(
    client: httpx.AsyncClient, plans: list[Plan], args: argparse.Namespace, sequential: bool = False
) -> tuple[float, list[Reply]]:
    """(aggregate tokens/s, replies) of the plans run all at once, or one after the other."""
    t0 = time.perf_counter()
    if sequential:
        replies = [await chat(client, p, args.tokens, args.timeout) for p in plans]
    else:
        replies = list(await asyncio.gather(*(chat(client, p, args.tokens, args.timeout) for p in plans)))
    wall = time.perf_counter() - t0
    bad = [r for r in replies if r.outcome != "ok"]
    if bad:
        raise RuntimeError(f"{len(bad)} of {len(replies)} requests failed; the first: {bad[0].error}")
    return sum(r.tokens for r in replies) / wall, replies


def plans(mode: str, n: int, card_ids: list[str]) -> list[Plan]:
    if mode == "base":
        return [Plan({"model": "base"}, PROMPTS[i % len(PROMPTS)]) for i in range(n)]
    return [Plan({"model": card_ids[i % len(card_ids)]}, PROMPTS[i % len(PROMPTS)]) for i in range(n)]


def http_client(url: str, clients: int, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8),
    )


async def warm_up(url: str, args: argparse.Namespace, card_ids: list[str]) -> tuple[list[Reply], list[Reply]]:
    """Every card mounted once, base and cards at the largest concurrency, with short answers."""
    n = max([*args.clients, len(card_ids)])
    short = argparse.Namespace(**{**vars(args), "tokens": min(args.tokens, 8)})
    async with http_client(url, n, args.timeout) as client:
        _, base = await wave(client, plans("base", max(args.clients), card_ids), short)
        _, cards = await wave(client, plans("cards", n, card_ids), short)
    return base, cards


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


# --- the two modes ---------------------------------------------------------------------------------

MODES = {"base": "all on the base", "cards": "each on a card (i mod N)", "alone": "one at a time (cards)"}


async def benchmark(url: str, args: argparse.Namespace, card_ids: list[str]) -> dict[tuple[int, str], Cell]:
    cells = {(c, m): Cell() for c in args.clients for m in MODES}
    async with http_client(url, max(args.clients), args.timeout) as client:
        for _ in range(args.repeats):
            for c in args.clients:
                for mode in MODES:
                    chosen = plans("base" if mode == "base" else "cards", c, card_ids)
                    tps, replies = await wave(client, chosen, args, sequential=mode == "alone")
                    cells[(c, mode)].tps.append(tps)
                    cells[(c, mode)].ttft += [r.ttft for r in replies if r.ttft is not None]
    return cells


def report_benchmark(args: argparse.Namespace, cells: dict[tuple[int, str], Cell]) -> None:
    tps = {k: statistics.median(v.tps) for k, v in cells.items()}
    print("| clients | requests | tok/s (aggregate) | TTFT p50 (ms) | TTFT p99 (ms) |")
    print("|---|---|---|---|---|")
    for c in args.clients:
        for mode, what in MODES.items():
            t = cells[(c, mode)].ttft
            print(
                f"| {c} | {what} | {tps[(c, mode)]:.1f} | {percentile(t, 0.5) * 1e3:.0f} | "
                f"{percentile(t, 0.99) * 1e3:.0f} |"
            )
    print()
    for c in args.clients:
        if c == 1:
            continue
        target = c == 16 and args.cards >= 16
        vs_alone = tps[(c, "cards")] / tps[(c, "alone")]
        vs_base = tps[(c, "cards")] / tps[(c, "base")]
        print(
            f"- {c} clients on {min(c, args.cards)} different cards vs the same {c} requests one at a "
            f"time: **{vs_alone:.2f}×**" + (" (target ≥ 5×)" if target else "")
        )
        print(
            f"- {c} clients on {min(c, args.cards)} different cards vs {c} clients on the base: "
            f"**{vs_base:.2f}×**" + (" (target ≥ 0.85×)" if target else "")
        )


async def soak(
    url: str, pid: int, args: argparse.Namespace, card_ids: list[str]
) -> tuple[Counter, Counter, list[tuple[float, float | None]], float, int]:
    """`--soak-clients` clients streaming in a loop for `--soak-warmup` + `--soak` seconds, on the
    base, single cards and a few two-card mixes; `--disconnect` of the requests hang up after a
    random number of chunks. Returns (outcomes, errors, RSS samples (s, MB), seconds, tokens)."""
    pairs = [(card_ids[i], card_ids[i + 1]) for i in range(0, len(card_ids) - 1, 2)][:4]
    choices: list[dict[str, Any]] = [
        {"model": "base"},
        *({"model": cid} for cid in card_ids),
        *(
            {"model": "base", "cards": [{"id": a, "strength": 0.5}, {"id": b, "strength": 0.5}]}
            for a, b in pairs
        ),
    ]
    start = time.monotonic()
    stop_at = start + args.soak_warmup + args.soak
    outcomes: Counter = Counter()
    errors: Counter = Counter()
    tokens = 0
    samples: list[tuple[float, float | None]] = []

    async def client_loop(client: httpx.AsyncClient, i: int) -> None:
        nonlocal tokens
        rng = random.Random(args.seed * 1000 + i)
        while time.monotonic() < stop_at:
            cut = None
            if args.tokens > 1 and rng.random() < args.disconnect:
                cut = rng.randint(1, args.tokens - 1)
            plan = Plan(rng.choice(choices), rng.choice(PROMPTS), cut)
            r = await chat(client, plan, args.tokens, args.timeout)
            outcomes[r.outcome] += 1
            tokens += r.tokens  # whole streams only: a cut one never sees its usage
            if r.error:
                errors[r.error[:160]] += 1
                if r.outcome == "failed":
                    await asyncio.sleep(0.5)  # a refused request (429, …) is retried, not hammered

    async def sampler() -> None:  # every RSS_EVERY seconds, and at the end of the warm-up
        ticks = int((args.soak_warmup + args.soak) / RSS_EVERY) + 2
        for mark in sorted({*(k * RSS_EVERY for k in range(ticks)), args.soak_warmup}):
            await asyncio.sleep(max(0.0, start + mark - time.monotonic()))
            samples.append((time.monotonic() - start, rss_mb(pid)))

    task = asyncio.ensure_future(sampler())
    try:
        async with http_client(url, args.soak_clients, args.timeout) as client:
            await asyncio.gather(*(client_loop(client, i) for i in range(args.soak_clients)))
    finally:
        task.cancel()
    samples.append((time.monotonic() - start, rss_mb(pid)))
    return outcomes, errors, samples, time.monotonic() - start, tokens


def drained(url: str, timeout: float = 30) -> dict[str, float]:
    """The server's gauges once nothing runs, waits or holds a mount (or after `timeout`)."""
    keys = ("lifecard_rows_active", "lifecard_queue_waiting", "lifecard_cards_mounted_in_use")
    deadline = time.monotonic() + timeout
    while True:
        m = metrics(url)
        if all(m.get(k) == 0 for k in keys) or time.monotonic() > deadline:
            return m
        time.sleep(0.5)


def report_soak(
    args: argparse.Namespace,
    outcomes: Counter,
    errors: Counter,
    samples: list[tuple[float, float | None]],
    seconds: float,
    tokens: int,
    after: dict[str, float],
) -> None:
    known = [(t, mb) for t, mb in samples if mb is not None]
    settled = [mb for t, mb in known if t >= args.soak_warmup]
    base_mb = settled[0] if settled else None
    print("| what | figure |")
    print("|---|---|")
    print(f"| streams completed and well-formed | {outcomes['ok']} |")
    print(f"| hung up on purpose (~{args.disconnect:.0%}) | {outcomes['cut']} |")
    print(f"| lost (no answer, HTTP error, timeout) | {outcomes['failed']} (target 0) |")
    print(
        f"| corrupted (malformed, error event, wrong length, no [DONE]) | {outcomes['corrupt']} (target 0) |"
    )
    print(f"| tokens/s of the completed streams over the soak | {tokens / seconds:.1f} |")
    if base_mb is not None:
        final, peak = settled[-1], max(settled)
        print(f"| server RSS after warm-up ({args.soak_warmup:.0f} s) | {base_mb:.0f} MB |")
        print(f"| server RSS at the end / peak | {final:.0f} / {peak:.0f} MB |")
        print(f"| RSS growth after warm-up | **{(final / base_mb - 1) * 100:+.1f}%** (target ≤ 5%) |")
    jobs = []
    for k, v in after.items():
        if k.startswith("lifecard_jobs_total{"):  # lifecard_jobs_total{outcome="finished"} 12
            outcome = k.split('"')[1]
            jobs.append(f"{outcome} {v:.0f}")
    print(f"| server jobs by outcome | {', '.join(jobs)} |")
    state = ", ".join(
        f"{k.removeprefix('lifecard_')} {after.get(k, float('nan')):.0f}"
        for k in ("lifecard_rows_active", "lifecard_queue_waiting", "lifecard_cards_mounted_in_use")
    )
    print(f"| server afterwards | {state} |")
    print()
    print("RSS every ~10 s (s: MB): " + ", ".join(f"{t:.0f}: {mb:.0f}" for t, mb in known))
    for message, count in errors.most_common(5):
        print(f"- {count}× {message}")


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--model", default=None, help="a .gguf file or HF folder (default: the default model)")
    ap.add_argument("--clients", default="1,4,16,32", help="comma-separated concurrency levels")
    ap.add_argument("--cards", type=int, default=16, help="cards uploaded (N)")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--targets", default="qv", choices=sorted(TARGETS))
    ap.add_argument("--scale", type=float, default=0.01, help="std of the random LoRA factors")
    ap.add_argument("--tokens", type=int, default=32, help="max_tokens of every request (ignore_eos)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300, help="seconds one request may take in all")
    ap.add_argument("--max-rows", type=int, default=16, help="passed to `lifecard serve`")
    ap.add_argument("--context", type=int, default=None, help="passed to `lifecard serve` (its default)")
    ap.add_argument("--card-memory", type=int, default=None, help="MB, passed to `lifecard serve`")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the server")
    ap.add_argument("--start-timeout", type=float, default=300)
    ap.add_argument("--soak", type=float, default=None, metavar="SECONDS", help="run the soak instead")
    ap.add_argument("--soak-warmup", type=float, default=60, help="soak seconds before the RSS baseline")
    ap.add_argument("--soak-clients", type=int, default=16)
    ap.add_argument("--disconnect", type=float, default=0.2, help="share of soak requests cut short")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    if not args.clients or min(args.clients) < 1 or args.cards < 1 or args.tokens < 1:
        ap.error("--clients, --cards and --tokens must be ≥ 1")

    with tempfile.TemporaryDirectory(prefix="lifecard-serve-bench-") as tmp:
        folder = Path(tmp)
        (folder / "cards").mkdir()
        paths = make_cards(args, folder / "cards")
        log_path = folder / "server.log"
        with open(log_path, "wb") as log:
            proc, url = start_server(args, folder / "store", log)
            try:
                run(args, proc, url, paths)
            except BaseException:
                stop_server(proc)
                tail = log_path.read_text(errors="replace")[-3000:]
                print(f"\n--- the server's log, last lines ---\n{tail}", file=sys.stderr)
                raise
            finally:
                stop_server(proc)


def run(args: argparse.Namespace, proc: subprocess.Popen, url: str, paths: list[Path]) -> None:
    t0 = time.perf_counter()
    health = wait_ready(proc, url, args.start_timeout)
    started = time.perf_counter() - t0
    card_ids = upload(url, paths)
    base, cards = asyncio.run(warm_up(url, args, card_ids))
    prompt_tokens = sorted({r.prompt_tokens for r in base + cards})
    rss_warm = rss_mb(proc.pid)
    threads = (
        args.threads or os.environ.get("OMP_NUM_THREADS") or f"torch default ({torch.get_num_threads()})"
    )
    print(
        f"# serve benchmark: `lifecard serve` {health['model']} {health['dtype']}, {threads} threads, "
        f"max rows {health['max_rows']}, context {health['context']}; {len(card_ids)} cards of rank "
        f"{args.rank} on {args.targets} ({paths[0].stat().st_size / 1e6:.1f} MB each), "
        f"prompts of {prompt_tokens[0]}–{prompt_tokens[-1]} tokens, {args.tokens} tokens per request (ignore_eos), "
        + (f"soak {args.soak:.0f} s" if args.soak else f"median of {args.repeats}")
        + f"; started in {started:.1f} s\n"
    )
    print(f"warm-up, base says {base[0].text!r}; {card_ids[0]} says {cards[0].text!r}\n")

    if args.soak:
        outcomes, errors, rss, seconds, tokens = asyncio.run(soak(url, proc.pid, args, card_ids))
        report_soak(args, outcomes, errors, rss, seconds, tokens, drained(url))
        return

    cells = asyncio.run(benchmark(url, args, card_ids))
    rss_end = rss_mb(proc.pid)
    report_benchmark(args, cells)
    if rss_warm is not None and rss_end is not None:
        print(
            f"- server RSS after warm-up {rss_warm:.0f} MB, at the end {rss_end:.0f} MB "
            f"({(rss_end / rss_warm - 1) * 100:+.1f}%)"
        )


if __name__ == "__main__":
    main()
