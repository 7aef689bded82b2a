"""The HTTP server on a tiny random model, served by a real uvicorn on 127.0.0.1 and called over HTTP:
auth, the OpenAI shapes (SSE included), every 4xx path, the card store (uploads of real malformed
files, privacy 404s, replace, delete while in use), limits, 429, disconnects, /health and /metrics."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import safetensors.torch
import torch
import uvicorn
from test_cli import lifecard, one_error_line
from test_engine import backend, hf, make_engine, model  # noqa: F401
from test_mounts import card

from lifecard.cards.base import BaseInfo
from lifecard.engine.generate import Engine
from lifecard.server.app import Limits, create_app
from lifecard.server.auth import Caller, Keys, KeysError
from lifecard.server.store import Store

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
KEYS = {"alice": "sk-alice-0123456789", "bob": "sk-bob-0123456789", "root": "sk-root-0123456789"}


def keys() -> Keys:
    return Keys(
        {KEYS["alice"]: Caller("alice"), KEYS["bob"]: Caller("bob"), KEYS["root"]: Caller("root", True)}
    )


def auth(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


# --- a live server in a thread ------------------------------------------------------------------


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` under uvicorn on a free loopback port in a background thread; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


def wait_until(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


def chat_engine(net: Any, bpe: Any) -> Engine:
    engine = make_engine(net, bpe)
    engine.tokenizer.chat_template = CHATML
    return engine


@dataclass
class Served:
    """A server running in this process: where it listens, its app and its engine."""

    url: str
    app: Any
    engine: Engine

    @property
    def scheduler(self) -> Any:
        return self.app.state.server.scheduler

    def drained(self) -> bool:
        s = self.scheduler
        return not s.running and not s.waiting and all(m.users == 0 for m in list(self.engine.mounts))


@dataclass
class Live(Served):
    store: Store

    def client(self, who: str | None = "alice", **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=auth(who) if who else {}, **({"timeout": 30} | kw))


@pytest.fixture(scope="module")
def live(model, backend, tmp_path_factory) -> Iterator[Live]:  # noqa: F811
    engine = chat_engine(model, backend)
    store = Store(tmp_path_factory.mktemp("store"), engine.base, reserved=("base",))
    limits = Limits(max_cards=3, max_upload_bytes=1 << 20)
    app = create_app(engine, store, keys(), max_rows=4, max_queue=8, limits=limits)
    with serve(app) as url:
        yield Live(url, app, engine, store)


@pytest.fixture(scope="module")
def slow(model, backend, tmp_path_factory) -> Iterator[Live]:  # noqa: F811
    """One row, one waiting place, 50 ms per decode step: long enough to act mid-stream."""
    engine = chat_engine(model, backend)
    decode = engine.decode

    def slow_decode(rows: Any, cache: Any) -> Any:
        time.sleep(0.05)
        if getattr(engine, "fail_next_step", False):
            engine.fail_next_step = False  # type: ignore[attr-defined]
            raise RuntimeError("a decode step broke")
        return decode(rows, cache)

    engine.decode = slow_decode  # type: ignore[method-assign]
    store = Store(tmp_path_factory.mktemp("slow-store"), engine.base)
    app = create_app(engine, store, keys(), max_rows=1, max_queue=1)
    with serve(app) as url:
        yield Live(url, app, engine, store)


def card_file(base: BaseInfo, tmp_path: Path, name: str, **kw: Any) -> bytes:
    path = tmp_path / f"{name}.card"
    card(base, name, **kw).write(path)
    return path.read_bytes()


def upload(client: httpx.Client, blob: bytes, **params: Any) -> httpx.Response:
    return client.post(
        "/v1/cards", content=blob, params=params, headers={"content-type": "application/octet-stream"}
    )


def chat(
    model: str = "base",  # noqa: F811
    text: str = "the quick brown fox",
    **kw: Any,
) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "temperature": 0,
        "max_tokens": 8,
    } | kw


def sse_events(text: str) -> list[Any]:
    """Parse an SSE body, checking its framing: `data: …` events, each followed by a blank line."""
    assert text.endswith("data: [DONE]\n\n"), text[-200:]
    events = text.split("\n\n")[:-1]
    assert all(e.startswith("data: ") and "\n" not in e for e in events), events
    return [e[6:] if e == "data: [DONE]" else json.loads(e[6:]) for e in events]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"]
    return body["error"]


# --- keys ----------------------------------------------------------------------------------------


def test_keys_from_json_lines_and_env(tmp_path):
    as_json = tmp_path / "keys.json"
    as_json.write_text(json.dumps({"k1": "alice", "k2": {"owner": "root", "admin": True}}))
    as_lines = tmp_path / "keys.txt"
    as_lines.write_text("# who may call\nk3 bob\n\nk4 carol admin\n")
    for path in (as_json, as_lines):
        assert not Keys.load(path).is_open
    k = Keys.load(as_json, env="k5:dave, k6:erin:admin")
    assert k.caller("Bearer k1") == Caller("alice") and k.caller("bearer k2") == Caller("root", True)
    assert k.caller("Bearer k6") == Caller("erin", True) and k.caller("Bearer nope") is None
    assert k.caller(None) is None and k.caller("Basic k1") is None
    assert Keys.load(as_lines).caller("Bearer k4") == Caller("carol", True)
    assert Keys.load(None, None).caller(None) == Caller("local", True)  # open: one implicit owner


@pytest.mark.parametrize(
    ("text", "env", "match"),
    [
        ("{not json", None, "not valid JSON"),
        ("k1 alice boss\n", None, "line 1"),
        ('{"k1": "al ice"}', None, "owner"),
        (None, "k1", "KEY:OWNER"),
        ('{"k1": "alice"}', "k1:bob", "both alice and bob"),
    ],
)
def test_bad_keys_are_refused_with_a_sentence(tmp_path, text, env, match):
    path = None
    if text is not None:
        path = tmp_path / "keys"
        path.write_text(text)
    with pytest.raises(KeysError, match=match):
        Keys.load(path, env)


def test_serve_without_keys_refuses_other_than_loopback(tmp_path):
    line = one_error_line(lifecard("serve", "--host", "0.0.0.0", "--store", str(tmp_path)))
    assert "loopback" in line and "--keys" in line
    line = one_error_line(lifecard("serve", "--keys", str(tmp_path / "missing"), "--store", str(tmp_path)))
    assert "keys file" in line


# --- auth, health, models ---------------------------------------------------------------------------


def test_health_needs_no_key_and_the_api_does(live):
    with live.client(None) as c:
        health = c.get("/health")
        assert (
            health.status_code == 200 and health.json()["context"] == 64 and health.json()["auth"] == "keys"
        )
        error = error_of(c.get("/v1/models"), 401)
        assert error["code"] == "invalid_api_key"
        error_of(c.get("/v1/models", headers={"Authorization": "Bearer wrong"}), 401)
        error_of(c.post("/v1/chat/completions", content=b"{bad json", headers=auth("alice")), 422)
        # 401 comes before the body is even read
        error_of(c.post("/v1/chat/completions", content=b"{bad json"), 401)


def test_not_ready_is_503(live):
    server = live.app.state.server
    server.ready = False
    try:
        with live.client() as c:
            response = c.post("/v1/chat/completions", json=chat())
            assert error_of(response, 503)["code"] == "not_ready" and response.headers["retry-after"]
            assert c.get("/health").status_code == 503
    finally:
        server.ready = True


def test_models_lists_the_base_and_the_callers_cards(live, tmp_path):
    with live.client("alice") as alice, live.client("bob") as bob:
        assert upload(alice, card_file(live.engine.base, tmp_path, "m-mine")).status_code == 201
        assert upload(bob, card_file(live.engine.base, tmp_path, "m-bobs")).status_code == 201
        assert upload(bob, card_file(live.engine.base, tmp_path, "m-open"), public=True).status_code == 201
        ids = [m["id"] for m in alice.get("/v1/models").json()["data"]]
        assert ids[0] == live.engine.base.model_id
        assert "m-mine" in ids and "m-open" in ids and "m-bobs" not in ids


# --- completions ------------------------------------------------------------------------------------


def test_chat_and_completion_shapes(live):
    with live.client() as c:
        r = c.post("/v1/chat/completions", json=chat(max_tokens=6, ignore_eos=True))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
        choice = body["choices"][0]
        assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "length"
        prompt = live.engine.tokenizer.encode_chat([{"role": "user", "content": "the quick brown fox"}])
        assert body["usage"] == {
            "prompt_tokens": len(prompt),
            "completion_tokens": 6,
            "total_tokens": len(prompt) + 6,
        }
        again = c.post("/v1/chat/completions", json=chat(max_tokens=6.0, ignore_eos=True)).json()  # 6.0 is 6
        assert again["choices"][0]["message"]["content"] == choice["message"]["content"]  # greedy

        r = c.post(
            "/v1/completions", json={"model": "base", "prompt": "Hello", "max_tokens": 5, "temperature": 0}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "text_completion" and body["choices"][0]["finish_reason"] in (
            "stop",
            "length",
        )
        ids = live.engine.tokenizer.encode("Hello")
        same = c.post(
            "/v1/completions", json={"model": "base", "prompt": ids, "max_tokens": 5, "temperature": 0}
        )
        assert same.json()["choices"][0]["text"] == body["choices"][0]["text"]  # token ids or text alike
        seeded = [
            c.post(
                "/v1/completions", json={"model": "base", "prompt": "Hello", "temperature": 1.0, "seed": 7}
            )
            for _ in range(2)
        ]
        assert seeded[0].json()["choices"][0]["text"] == seeded[1].json()["choices"][0]["text"]


def test_streams_are_sse_in_openai_shapes_and_match_the_whole_answer(live):
    with live.client() as c:
        whole = c.post("/v1/chat/completions", json=chat(max_tokens=10, ignore_eos=True)).json()
        r = c.post(
            "/v1/chat/completions",
            json=chat(max_tokens=10, ignore_eos=True, stream=True, stream_options={"include_usage": True}),
        )
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.text)
        assert events[-1] == "[DONE]"
        chunks = events[:-1]
        assert all(e["object"] == "chat.completion.chunk" and e["id"] == chunks[0]["id"] for e in chunks)
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in chunks if e["choices"])
        assert text == whole["choices"][0]["message"]["content"]
        assert chunks[-2]["choices"][0] == {
            "index": 0,
            "delta": {},
            "finish_reason": "length",
            "logprobs": None,
        }
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]

        plain = c.post(
            "/v1/completions", json={"model": "base", "prompt": "Hello", "max_tokens": 5, "temperature": 0}
        )
        r = c.post(
            "/v1/completions",
            json={"model": "base", "prompt": "Hello", "max_tokens": 5, "temperature": 0, "stream": True},
        )
        events = sse_events(r.text)[:-1]
        assert all(e["object"] == "text_completion" for e in events)
        assert "".join(e["choices"][0]["text"] for e in events) == plain.json()["choices"][0]["text"]
        assert events[-1]["choices"][0]["finish_reason"] == plain.json()["choices"][0]["finish_reason"]
        assert "usage" not in events[-1] or events[-1]["usage"] is None


def test_cards_by_model_and_by_mix(live, tmp_path):
    base = live.engine.base
    with live.client() as c:
        assert upload(c, card_file(base, tmp_path, "mix-a", seed=1, steer=True)).status_code == 201
        assert upload(c, card_file(base, tmp_path, "mix-b", rank=2, seed=2)).status_code == 201

        def text(**kw: Any) -> str:
            r = c.post("/v1/chat/completions", json=chat(max_tokens=8, ignore_eos=True) | kw)
            assert r.status_code == 200, r.text
            return r.json()["choices"][0]["message"]["content"]

        plain, by_model = text(), text(model="mix-a")
        assert by_model != plain  # the card changes the answer
        assert text(cards=[{"id": "mix-a"}]) == by_model  # default strength
        assert text(cards=[{"id": "mix-a", "strength": 0}]) == plain  # strength 0 is the base
        mixed = text(cards=[{"id": "mix-a", "strength": 0.5}, {"id": "mix-b", "strength": 1.5}])
        assert (
            text(model="mix-a", cards=[{"id": "mix-b", "strength": 1.5}, {"id": "mix-a", "strength": 0.5}])
            == mixed
        )
        assert wait_until(live.drained)


# --- every 4xx ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "base"}, 422, "messages"),
        (chat(temperature="hot"), 422, "temperature"),
        (chat(temperature=True), 422, "temperature"),
        (chat(temperature=-1), 422, "temperature"),
        (chat(max_tokens=0), 422, "max_tokens"),
        (chat(max_tokens=1.5), 422, "max_tokens"),
        (chat(stop=""), 422, "stop"),
        (chat(stop=["a"] * 17), 422, "stop"),
        (chat(seed=-1), 422, "seed"),
        (chat(stream="yes"), 422, "stream"),
        (chat(cards=[{"id": "x", "weight": 1}]), 422, "cards[0].weight"),
        ({"model": "base", "messages": [{"role": "tool", "content": "x"}]}, 422, "messages[0].role"),
        ({"model": "base", "messages": []}, 422, "messages"),
        (chat(n=2), 400, "n"),
        (chat(presence_penalty=0.5), 400, "presence_penalty"),
        (chat(tools=[{"type": "function"}]), 400, "tools"),
        (chat(max_tokens=10_000), 400, "max_tokens"),
        (chat(text="fox " * 100), 400, "messages"),
        (chat(model="no-such-card"), 404, "model"),
        (chat(cards=[{"id": "no-such-card"}]), 404, "cards[0].id"),
    ],
)
def test_bad_chat_requests_get_clear_4xx(live, body, status, param):
    with live.client() as c:
        assert error_of(c.post("/v1/chat/completions", json=body), status)["param"] == param


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "base", "prompt": ""}, 400, "prompt"),
        ({"model": "base", "prompt": [100_000]}, 400, "prompt"),
        ({"model": "base", "prompt": ["a", "b"]}, 400, "prompt"),
        ({"model": "base", "prompt": "hi", "echo": True}, 400, "echo"),
        ({"model": "base", "prompt": "hi", "logprobs": 2}, 400, "logprobs"),
        ({"model": "base", "prompt": [True]}, 422, "prompt"),
        ({"model": "base", "prompt": {"text": "hi"}}, 422, "prompt"),
        ({"model": 3, "prompt": "hi"}, 422, "model"),
    ],
)
def test_bad_completion_requests_get_clear_4xx(live, body, status, param):
    with live.client() as c:
        assert error_of(c.post("/v1/completions", json=body), status)["param"] == param


def test_malformed_bodies_and_routes(live):
    with live.client() as c:
        for content in (b"{", b"[1, 2]", b"", b"null", '{"model": "\u00ff'.encode("latin-1")):
            error_of(
                c.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"}),
                422,
            )
        error_of(c.post("/v1/chat/completions", content=b'{"model": NaN}'), 422)
        assert error_of(c.get("/v1/nothing"), 404)["type"] == "invalid_request_error"
        error_of(c.put("/v1/models"), 405)


def test_context_and_size_limits_name_the_numbers(live):
    with live.client() as c:
        message = error_of(c.post("/v1/chat/completions", json=chat(text="fox " * 100)), 400)["message"]
        assert "context is 64" in message and "tokens" in message
        message = error_of(c.post("/v1/chat/completions", json=chat(max_tokens=60)), 400)["message"]
        assert "max_tokens 60" in message and "at most" in message
        huge = chat(text="x" * (1 << 20))
        assert error_of(c.post("/v1/chat/completions", json=huge), 413)["code"] == "body_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the gate counts
            yield b'{"model": "base", "messages": [{"role": "user", "content": "'
            for _ in range(20):
                yield b"x" * 65536
            yield b'"}]}'

        error_of(c.post("/v1/chat/completions", content=chunks()), 413)
        error_of(upload(c, b"\0" * ((1 << 20) + 1)), 413)


def test_strength_range_and_cards_per_request(live, tmp_path):
    base = live.engine.base
    with live.client() as c:
        for name in ("lim-a", "lim-b", "lim-c", "lim-d"):
            assert upload(c, card_file(base, tmp_path, name)).status_code == 201
        error = error_of(
            c.post("/v1/chat/completions", json=chat(cards=[{"id": "lim-a", "strength": 2.5}])), 400
        )
        assert error["param"] == "cards[0].strength" and "[0, 2]" in error["message"]
        four = [{"id": n} for n in ("lim-a", "lim-b", "lim-c", "lim-d")]
        assert "at most 3" in error_of(c.post("/v1/chat/completions", json=chat(cards=four)), 400)["message"]
        twice = [{"id": "lim-a"}, {"id": "lim-a"}]
        assert error_of(c.post("/v1/chat/completions", json=chat(cards=twice)), 400)["param"] == "cards[1].id"


# --- the card store ----------------------------------------------------------------------------------


def test_upload_get_download_replace_and_delete(live, tmp_path):
    base = live.engine.base
    blob = card_file(base, tmp_path, "st-ada", seed=3)
    with live.client("alice") as alice, live.client("bob") as bob, live.client("root") as root:
        r = upload(alice, blob)
        assert r.status_code == 201, r.text
        summary = r.json()
        assert summary["id"] == "st-ada" and summary["owner"] == "alice" and summary["public"] is False
        assert summary["size"] == len(blob) and summary["modules"][0]["kind"] == "lora"
        assert alice.get("/v1/cards/st-ada").json()["digest"] == summary["digest"]
        assert alice.get("/v1/cards/st-ada/file").content == blob
        assert any(e["id"] == "st-ada" for e in alice.get("/v1/cards").json()["data"])

        # usable by the very next request, no restart
        assert alice.post("/v1/chat/completions", json=chat(model="st-ada")).status_code == 200

        # the same owner replaces it; another owner may not take the id
        newer = card_file(base, tmp_path, "st-ada", seed=4)
        replaced = upload(alice, newer)
        assert replaced.status_code == 200 and replaced.json()["digest"] != summary["digest"]
        assert alice.get("/v1/cards/st-ada/file").content == newer
        assert error_of(upload(bob, blob), 409)["code"] == "card_exists"

        # multipart works too
        files = {"file": ("st-multi.card", card_file(base, tmp_path, "st-multi"), "application/octet-stream")}
        assert alice.post("/v1/cards", files=files).status_code == 201

        # owner-only changes: bob cannot see it, then sees but cannot change it once public
        assert error_of(bob.patch("/v1/cards/st-ada", json={"public": True}), 404)
        assert alice.patch("/v1/cards/st-ada", json={"public": True}).json()["public"] is True
        assert bob.post("/v1/chat/completions", json=chat(model="st-ada")).status_code == 200
        assert error_of(bob.delete("/v1/cards/st-ada"), 403)["code"] == "not_owner"
        assert error_of(bob.patch("/v1/cards/st-ada", json={"public": "yes"}), 422)

        assert alice.delete("/v1/cards/st-ada").json() == {"id": "st-ada", "object": "card", "deleted": True}
        error_of(alice.get("/v1/cards/st-ada"), 404)
        error_of(alice.post("/v1/chat/completions", json=chat(model="st-ada")), 404)
        assert root.delete("/v1/cards/st-multi").status_code == 200  # an admin manages every card


def test_someone_elses_private_card_answers_exactly_like_a_missing_one(live, tmp_path):
    with live.client("alice") as alice, live.client("bob") as bob:
        assert upload(alice, card_file(live.engine.base, tmp_path, "secret")).status_code == 201
        for method, path, body in [
            ("GET", "/v1/cards/{}", None),
            ("GET", "/v1/cards/{}/file", None),
            ("PATCH", "/v1/cards/{}", {"public": True}),
            ("DELETE", "/v1/cards/{}", None),
            ("POST", "/v1/chat/completions", chat(model="{}")),
            ("POST", "/v1/chat/completions", chat(cards=[{"id": "{}"}])),
        ]:

            def call(
                card_id: str, method: str = method, path: str = path, body: Any = body
            ) -> httpx.Response:
                content = None if body is None else json.dumps(body).replace("{}", card_id)
                headers = {"content-type": "application/json"}
                return bob.request(method, path.format(card_id), content=content, headers=headers)

            theirs, missing = call("secret"), call("nothing")
            assert theirs.status_code == missing.status_code == 404, (method, path, theirs.text)
            assert theirs.json() == json.loads(json.dumps(missing.json()).replace("nothing", "secret"))
        assert all(e["id"] != "secret" for e in bob.get("/v1/cards").json()["data"])


def malformed_cards(base: BaseInfo, tmp_path: Path) -> dict[str, bytes]:
    good = card_file(base, tmp_path, "good", steer=True)
    header = int.from_bytes(good[:8], "little")
    nan = bytearray(good)
    nan[8 + header : 8 + header + 4] = bytes.fromhex("0000c07f")  # the first float of the data: NaN
    flipped = bytearray(good)
    flipped[-1] ^= 0x01
    other = BaseInfo(
        **{**base.__dict__, "hidden_size": 32, "projections": {p: (32, 32) for p in base.projections}}
    )
    wrong_base = card_file(other, tmp_path, "other-base")
    plain = safetensors.torch.save({"x": torch.zeros(3)})
    return {
        "empty": b"",
        "random bytes": bytes(range(256)) * 8,
        "cut short": good[: len(good) // 2],
        "a NaN": bytes(nan),
        "a flipped bit": bytes(flipped),
        "another base": wrong_base,
        "not a card": plain,
        "a header that lies": (10**9).to_bytes(8, "little") + good[8:],
        "json that is not an object": (2).to_bytes(8, "little") + b"[]",
    }


def test_malformed_uploads_are_refused_and_nothing_is_stored(live, tmp_path):
    before = sorted(p.name for p in live.store.root.iterdir())
    with live.client() as c:
        for what, blob in malformed_cards(live.engine.base, tmp_path).items():
            error = error_of(upload(c, blob), 400)
            assert error["code"] in ("invalid_card", None), (what, error)
            assert "Traceback" not in error["message"] and error["message"].count("\n") == 0, what
        reserved = card_file(live.engine.base, tmp_path, "base")
        assert "names the base model" in error_of(upload(c, reserved), 400)["message"]
        error_of(c.post("/v1/cards", files={"other": (None, "text")}), 400)
    assert sorted(p.name for p in live.store.root.iterdir()) == before


def test_the_index_survives_a_restart_and_a_thousand_cards_list_fast(live, tmp_path):
    root = tmp_path / "big"
    store = Store(root, live.engine.base)
    entry = store.put(card_file(live.engine.base, tmp_path, "one"), "alice", public=True)[0]
    index = json.loads((root / "index.json").read_text())
    for i in range(1000):  # a thousand entries, as a thousand uploads would leave them
        card_id = f"c{i:04d}"
        index["cards"][card_id] = index["cards"]["one"] | {
            "id": card_id,
            "owner": "alice" if i % 2 else "bob",
            "public": False,
        }
        (root / f"{card_id}.card").write_bytes(b"")
    (root / "index.json").write_text(json.dumps(index))
    reopened = Store(root, live.engine.base)
    assert len(reopened.entries) == 1001 and reopened.get("one") == entry
    app = create_app(live.engine, reopened, keys())
    app.state.server.ready = True  # no lifespan: only the listing is exercised
    transport = httpx.ASGITransport(app=app)

    async def listing() -> tuple[float, int]:
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=auth("alice")) as c:
            await c.get("/v1/cards")  # warm up
            start = time.perf_counter()
            r = await c.get("/v1/cards")
            return time.perf_counter() - start, len(r.json()["data"])

    import asyncio

    seconds, count = asyncio.run(listing())
    assert count == 501  # alice's 500 and the public one
    assert seconds < 0.05, f"listing took {seconds * 1000:.0f} ms"  # the target; ~3 ms here
    print(f"listing 1,001 cards: {seconds * 1000:.1f} ms")


# --- load on one row: 429, disconnects, deleting a card in use -------------------------------------


def test_a_full_queue_is_429_and_closed_streams_free_their_rows(slow):
    body = chat(max_tokens=30, ignore_eos=True, stream=True)  # 1.5 s to run to the end
    s = slow.scheduler
    cancelled = s.stats.cancelled
    with slow.client() as a, slow.client() as b, slow.client() as c:
        with a.stream("POST", "/v1/chat/completions", json=body) as first:
            lines = first.iter_lines()
            assert next(lines).startswith("data: ")
            assert wait_until(lambda: len(s.running) == 1)
            with b.stream("POST", "/v1/chat/completions", json=body) as second:
                assert second.status_code == 200 and wait_until(lambda: len(s.waiting) == 1)
                busy = c.post("/v1/chat/completions", json=chat())
                assert error_of(busy, 429)["code"] == "queue_full" and busy.headers["retry-after"] == "1"
        # both clients went away mid-stream: their jobs are cancelled at once, not run to the end
        assert wait_until(slow.drained, timeout=0.5)
    assert s.stats.cancelled == cancelled + 2
    with slow.client() as c:  # and the server serves on
        assert c.post("/v1/chat/completions", json=chat(max_tokens=3)).status_code == 200


def test_a_client_that_gives_up_on_a_whole_answer_frees_its_row(slow):
    s = slow.scheduler
    cancelled = s.stats.cancelled
    with slow.client(timeout=0.3) as c, pytest.raises(httpx.ReadTimeout):
        c.post("/v1/chat/completions", json=chat(max_tokens=30, ignore_eos=True))
    assert wait_until(slow.drained, timeout=0.5) and s.stats.cancelled == cancelled + 1


def test_deleting_a_card_in_use_does_not_break_the_request(slow, tmp_path):
    with slow.client() as c:
        assert upload(c, card_file(slow.engine.base, tmp_path, "doomed", steer=True)).status_code == 201
        whole = c.post(
            "/v1/chat/completions", json=chat(model="doomed", max_tokens=20, ignore_eos=True)
        ).json()
        body = chat(model="doomed", max_tokens=20, ignore_eos=True, stream=True)
        with c.stream("POST", "/v1/chat/completions", json=body) as r:
            chunks = r.iter_text()
            text = next(chunks)
            with slow.client() as other:
                assert other.delete("/v1/cards/doomed").status_code == 200
            assert slow.scheduler.running  # still running on the deleted card
            text += "".join(chunks)
        events = sse_events(text)
        streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
        assert streamed == whole["choices"][0]["message"]["content"]
        assert events[-2]["choices"][0]["finish_reason"] == "length"
        error_of(c.post("/v1/chat/completions", json=chat(model="doomed")), 404)
    assert wait_until(slow.drained)


def test_a_step_that_raises_fails_its_rows_and_the_server_serves_on(slow):
    slow.engine.fail_next_step = True  # type: ignore[attr-defined]
    with slow.client() as c:
        error = error_of(c.post("/v1/chat/completions", json=chat(max_tokens=5, ignore_eos=True)), 500)
        assert error["type"] == "server_error"
        assert c.post("/v1/chat/completions", json=chat(max_tokens=3)).status_code == 200
    assert wait_until(slow.drained)


def test_a_tiny_temperature_is_greedy(live):
    with live.client() as c:
        greedy, tiny = (
            c.post("/v1/chat/completions", json=chat(max_tokens=8, ignore_eos=True, temperature=t)).json()
            for t in (0, 1e-40)
        )
        assert tiny["choices"] == greedy["choices"]


# --- metrics -------------------------------------------------------------------------------------------


def test_metrics_are_prometheus_text(live):
    with live.client() as c:
        c.post("/v1/chat/completions", json=chat(max_tokens=2))
        c.post("/v1/chat/completions", json=chat(model="missing"))
        r = httpx.get(f"{live.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {}
    for line in r.text.splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    for name in (
        "lifecard_queue_waiting",
        "lifecard_rows_active",
        "lifecard_tokens_generated_total",
        "lifecard_tokens_per_second",
        "lifecard_cards_mounted",
        "lifecard_mount_cache_hits_total",
        "lifecard_mount_cache_evictions_total",
    ):
        assert name in values, name
    assert values["lifecard_tokens_generated_total"] >= 2
    assert (
        values['lifecard_http_requests_total{method="POST",route="/v1/chat/completions",status="404"}'] >= 1
    )
    assert (
        values['lifecard_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}'] >= 1
    )
