"""The server on the real default model (float32) under real clients: the official openai SDK,
36 concurrent streams over 8 cards, 3 two-card mixes and the base, each equal to the same request run
alone, and clients that hang up mid-stream while others are served.

float32, because greedy decoding is batch-invariant there on this CPU; bfloat16 matmuls pick other
kernels for other batch sizes, so a row's tokens may depend on its neighbours' count (not their
content). Torch runs on one thread here: on a shared 2-core machine two intra-op threads spin
against each other and every step is many times slower. Bounded: a few tokens per request, well
under a minute in all.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch
from test_cli import LIFECARD
from test_mounts import card
from test_server_api import Served, serve, wait_until

from lifecard.cards.card import Card
from lifecard.engine.generate import Completion, Engine, Request
from lifecard.engine.sampling import SamplingParams
from lifecard.server.app import create_app
from lifecard.server.auth import Caller, Keys
from lifecard.server.store import Store

pytestmark = pytest.mark.integration

KEY = "sk-load-0123456789"
TOKENS = 8
PROMPTS = ["Tell me about the sea.", "What is a clock?", "Name a colour."]
CARD_IDS = [f"card-{i}" for i in range(8)]
# a mix: ((card id, strength), ...); () is the base
MIXES: list[tuple[tuple[str, float], ...]] = [
    (),
    *(((cid, 1.0),) for cid in CARD_IDS),
    (("card-0", 0.5), ("card-1", 0.5)),
    (("card-2", 1.0), ("card-5", 0.3)),
    (("card-3", 0.7), ("card-6", 1.2)),
]


@dataclass
class Loaded(Served):
    alone: dict[tuple[int, int], Completion]  # (prompt index, mix index) -> the answer run alone


def messages(prompt: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPTS[prompt]}]


def request_fields(mix: int) -> dict[str, Any]:
    """How a client names mix `mix`: a lone card at its default strength as `model`, else `cards`."""
    chosen = MIXES[mix]
    if len(chosen) == 1 and chosen[0][1] == 1.0:
        return {"model": chosen[0][0]}
    return {"model": "base", "cards": [{"id": cid, "strength": s} for cid, s in chosen]}


@pytest.fixture(scope="module")
def served(tmp_path_factory: Any) -> Iterator[Loaded]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        engine = Engine.load(dtype="float32")
        cards: dict[str, Card] = {}
        folder = tmp_path_factory.mktemp("cards")
        for i, cid in enumerate(CARD_IDS):
            cards[cid] = card(engine.base, cid, rank=2, seed=i, steer=i % 2 == 0)
            cards[cid].write(folder / f"{cid}.card")
        # the oracle first: every (prompt, mix) alone, one at a time, before the server owns the engine
        params = SamplingParams(temperature=0, max_tokens=TOKENS)
        alone = {}
        for p in range(len(PROMPTS)):
            ids = engine.chat_prompt(messages(p))
            for m, mix in enumerate(MIXES):
                slot = engine.mount([(cards[cid], s) for cid, s in mix]).slot if mix else 0
                alone[(p, m)] = engine.generate([Request(ids, params, slot)])[0]
                if slot:
                    engine.unmount(slot)
        assert len({a.text for a in alone.values()}) > len(alone) // 2  # the cards do change the answers
        store = Store(tmp_path_factory.mktemp("store"), engine.base)
        for cid in CARD_IDS:
            store.put((folder / f"{cid}.card").read_bytes(), "loader")
        app = create_app(engine, store, Keys({KEY: Caller("loader")}), max_rows=16, max_queue=64, context=256)
        with serve(app) as url:
            yield Loaded(url, app, engine, alone)
    finally:
        torch.set_num_threads(threads)


def sdk(served: Loaded, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key=KEY, timeout=60, max_retries=0, **kw)


def test_the_openai_sdk_streaming_and_not_chat_and_completions(served):
    client = sdk(served)
    ids = [m.id for m in client.models.list()]
    assert ids[0] == served.engine.base.model_id and set(CARD_IDS) <= set(ids)

    want = served.alone[(0, 1)]  # card-0 alone
    reply = client.chat.completions.create(
        model="card-0", messages=messages(0), max_tokens=TOKENS, temperature=0
    )
    assert reply.choices[0].message.content == want.text
    assert reply.choices[0].finish_reason == want.finish_reason
    assert reply.usage is not None and reply.usage.completion_tokens == len(want.tokens)

    want = served.alone[(1, 9)]  # a two-card mix, through the `cards` extension
    stream = client.chat.completions.create(
        model="base",
        messages=messages(1),
        max_tokens=TOKENS,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"cards": request_fields(9)["cards"]},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want.text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(want.tokens)

    raw = "The capital of France is"
    engine_ids = served.engine.tokenizer.encode(raw)
    text = client.completions.create(model="base", prompt=raw, max_tokens=TOKENS, temperature=0)
    streamed = client.completions.create(
        model="base", prompt=raw, max_tokens=TOKENS, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == text.choices[0].text
    assert text.usage is not None and text.usage.prompt_tokens == len(engine_ids)
    assert text.choices[0].text.strip()

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nobody", messages=messages(0), max_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="base", messages=messages(0), max_tokens=2, n=2)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{served.url}/v1", api_key="wrong", max_retries=0).models.list()
    assert wait_until(served.drained)


def test_many_concurrent_streams_each_equal_the_request_alone(served):
    clients = [(i // len(MIXES) % len(PROMPTS), i % len(MIXES)) for i in range(36)]
    assert len(set(clients)) == 36 and len({m for _, m in clients}) == len(MIXES)

    async def one(client: openai.AsyncOpenAI, prompt: int, mix: int) -> tuple[str, str | None]:
        fields = request_fields(mix)
        stream = await client.chat.completions.create(
            model=fields["model"],
            messages=messages(prompt),
            max_tokens=TOKENS,
            temperature=0,
            stream=True,
            extra_body={"cards": fields["cards"]} if "cards" in fields else None,
        )
        text, finish = "", None
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        return text, finish

    async def everyone() -> list[tuple[str, str | None]]:
        async with openai.AsyncOpenAI(
            base_url=f"{served.url}/v1", api_key=KEY, timeout=60, max_retries=0
        ) as c:
            return await asyncio.gather(*(one(c, p, m) for p, m in clients))

    start = time.monotonic()
    results = asyncio.run(everyone())
    elapsed = time.monotonic() - start
    assert len(results) == len(clients)  # none lost
    for (p, m), (text, finish) in zip(clients, results, strict=True):
        want = served.alone[(p, m)]
        assert (text, finish) == (want.text, want.finish_reason), f"prompt {p}, mix {MIXES[m]}"
    assert wait_until(served.drained)
    print(f"36 concurrent streams in {elapsed:.1f} s")


def test_clients_hanging_up_mid_stream_under_load(served):
    rng = random.Random(5)
    cancelled = served.scheduler.stats.cancelled
    plan = []  # (prompt, mix, hang up after this many events, or None to read to the end)
    for i in range(24):
        p, m = rng.randrange(len(PROMPTS)), rng.randrange(len(MIXES))
        plan.append((p, m, rng.randint(1, 3) if i % 3 == 0 else None))

    async def one(
        client: httpx.AsyncClient, p: int, m: int, hang_up: int | None
    ) -> tuple[str, str | None] | None:
        body = {**request_fields(m), "messages": messages(p), "temperature": 0, "stream": True}
        body["max_tokens"] = TOKENS if hang_up is None else 200
        body["ignore_eos"] = hang_up is not None  # long enough to be running when the client leaves
        text, finish, seen = "", None, 0
        async with client.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                seen += 1
                if hang_up is not None and seen > hang_up:
                    return None  # leaving the block closes the connection mid-stream
                choice = json.loads(line[6:])["choices"][0]
                text += choice["delta"].get("content", "")
                finish = choice["finish_reason"] or finish
        return text, finish

    async def everyone() -> list[Any]:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=served.url, headers=headers, timeout=60) as client:
            return await asyncio.gather(*(one(client, p, m, h) for p, m, h in plan))

    results = asyncio.run(everyone())
    for (p, m, hang_up), got in zip(plan, results, strict=True):
        if hang_up is None:
            want = served.alone[(p, m)]
            assert got == (want.text, want.finish_reason), f"prompt {p}, mix {MIXES[m]}"
    hung_up = sum(1 for *_, h in plan if h is not None)
    assert wait_until(served.drained, timeout=10)  # every row freed, no mount left held
    assert served.scheduler.stats.cancelled - cancelled == hung_up
    with sdk(served) as client:  # and the server serves on
        reply = client.chat.completions.create(
            model="card-3", messages=messages(2), max_tokens=TOKENS, temperature=0
        )
        assert reply.choices[0].message.content == served.alone[(2, 4)].text


def test_lifecard_serve_from_the_command_line(tmp_path):
    """The real console script: example cards preloaded as public cards, keys from the environment,
    the openai SDK against it, and a clean stop on SIGTERM."""
    examples = sorted(Path(__file__).parent.parent.glob("examples/cards/*.card"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["serve", "--port", str(port), "--store", str(tmp_path / "store"), "--context", "256"]
    args += ["--max-rows", "4", *(f"--card={p}" for p in examples)]
    env = {**os.environ, "LIFECARD_API_KEYS": f"{KEY}:someone"}
    proc = subprocess.Popen(
        [*LIFECARD, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: _is_up(url), timeout=120), "lifecard serve did not come up"
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, timeout=60, max_retries=0)
        ids = [m.id for m in client.models.list()]
        assert {p.stem for p in examples} <= set(ids)  # preloaded, public, usable by any key
        model = examples[0].stem if examples else "base"
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hello!"}], max_tokens=8, temperature=0
        )
        assert reply.choices[0].message.content and reply.usage is not None
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells how it ended
    assert proc.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in out, out
    assert "Traceback" not in out, out


def _is_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
