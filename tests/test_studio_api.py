"""The studio's routes over HTTP on a tiny random model (no browser): forge jobs (create, progress,
cancel, listing after a reload, resuming after a server restart, refusals in one line, privacy),
character card imports, exports, the gallery listing and the page itself."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from test_mounts import card
from test_server_api import CHATML, KEYS, auth, keys, serve, wait_until
from tiny import SIZES
from tokenizers import Tokenizer as Backend
from transformers import LlamaConfig, LlamaForCausalLM

from lifecard.cards.card import Card
from lifecard.cards.charcard import read_character_card, write_png_card
from lifecard.engine.generate import Engine
from lifecard.eval.report import with_eval
from lifecard.forge.progress import Progress
from lifecard.model.config import ModelConfig
from lifecard.model.llama import Transformer
from lifecard.model.sockets import SocketBank
from lifecard.model.tokenizer import Tokenizer
from lifecard.server.app import create_app
from lifecard.server.auth import Keys
from lifecard.server.jobs import Jobs
from lifecard.server.store import Store

PROFILE = {
    "name": "Tess Tiny",
    "identity": "A lighthouse keeper from Skerry.",
    "tone": {"description": "dry", "like": "You talk about the sea.", "markers": ["sea"]},
    "values": ["patience"],
    "knowledge": [
        {"fact": "I live on Skerry.", "questions": ["Where do you live?", "Home?"], "answer": "Skerry"}
    ],
    "examples": [[{"user": "Hi"}, {"assistant": "Mind the lamp."}]],
}


@pytest.fixture(scope="module")
def world(tiny_bpe: Backend) -> tuple[Transformer, Tokenizer]:
    """A tiny random Llama with a context long enough for the forge's persona prompts."""
    torch.manual_seed(0)
    config = LlamaConfig(
        **(SIZES | {"vocab_size": tiny_bpe.get_vocab_size(), "max_position_embeddings": 1024})
    )
    hf = LlamaForCausalLM(config).eval().requires_grad_(False)
    model = Transformer.from_state_dict(ModelConfig.from_hf(hf.config.to_dict()), hf.state_dict())
    tok = Tokenizer(tiny_bpe, bos_id=None, eos_id=2, eos_ids=(0, 2), add_bos=False, chat_template=CHATML)
    return model, tok


def studio_engine(world: tuple[Transformer, Tokenizer]) -> Engine:
    model, tok = world
    return Engine(model, tok, SocketBank(model.cfg, num_slots=3, max_rank=8))


class Studio:
    """A live server with the studio, and what the tests reach into."""

    def __init__(self, url: str, app: Any, store: Store):
        self.url, self.app, self.store = url, app, store

    @property
    def jobs(self) -> Jobs:
        return self.app.state.studio.jobs

    def client(self, who: str | None = "alice") -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=auth(who) if who else {}, timeout=30)


def start_studio(world: Any, root: Path, api_keys: Keys, forge: Callable[..., Card] | None = None) -> Any:
    engine = studio_engine(world)
    store = Store(root, engine.base, reserved=("base",))
    app = create_app(engine, store, api_keys, max_rows=4, max_queue=8, context=256)
    app.state.studio.forge = forge
    return app, store


@pytest.fixture(scope="module")
def studio(world: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    app, store = start_studio(world, tmp_path_factory.mktemp("studio-store"), keys())
    with serve(app) as url:
        yield Studio(url, app, store)


class SlowForge:
    """A stand-in forge: `steps` progress steps of `pause` seconds each, then a small random card.
    `gate` (if set) holds the first step until it is set, so a test can act while the job runs."""

    def __init__(self, steps: int = 5, pause: float = 0.05):
        self.steps, self.pause = steps, pause
        self.gate: threading.Event | None = None
        self.calls = 0

    def __call__(self, engine: Engine, profile: Any, *, progress: Progress, **kw: Any) -> Card:
        self.calls += 1
        progress.start("teacher answers", self.steps)
        for i in range(self.steps):
            if self.gate is not None:
                self.gate.wait(10)
            time.sleep(self.pause)
            progress.advance(1, loss=1.0 / (i + 1))
        forge = {"method": "fake", "budget": kw["budget"], "seconds": 0.1}
        return card(engine.base, profile.id, rank=2, persona=profile.persona(), forge=forge)


def fake_eval(engine: Engine, made: Card, plots: Path, progress: Progress) -> tuple[Card, list[str]]:
    """Stands in for the eval at the studio's one call site: figures into the card, one plot."""
    progress.start("eval", 1)
    plots.mkdir(parents=True, exist_ok=True)
    (plots / "sweep.png").write_bytes(write_png_card({"name": "plot"}))
    progress.advance(1)
    figures = {"drift": 1.02, "recall": 0.5, "corpus": "a note", "sweep": [{"strength": 0.0, "drift": 1.0}]}
    return with_eval(made, figures), ["sweep.png"]


def wait_job(
    client: httpx.Client, job_id: str, until: tuple[str, ...], timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/forge/{job_id}").json()
        if job["status"] in until:
            return job
        assert time.monotonic() < deadline, f"job stayed {job['status']}: {job}"
        time.sleep(0.05)


def one_line_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert message and "\n" not in message and "Traceback" not in message
    return message


# --- forge jobs ------------------------------------------------------------------------------------


def test_a_profile_becomes_a_card_through_a_job(studio: Studio) -> None:
    """The real forge, tiny budget: queued → running through its stages → done, card stored."""
    studio.app.state.studio.forge = None
    with studio.client() as c:
        r = c.post("/v1/forge", json={"profile": PROFILE, "budget": "tiny", "seed": 1})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] in ("queued", "running") and job["card_id"] == "tess-tiny"
        assert "input" not in job and job["budget"] == "tiny" and job["seed"] == 1
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while job["status"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline
            job = c.get(f"/v1/forge/{job['id']}").json()
            seen.add(job["stage"])
            assert 0 <= job["progress"] <= 1
            time.sleep(0.02)
        assert job["status"] == "done", job["error"]
        assert job["progress"] == 1 and [s["name"] for s in job["stages"]] == [
            "contrast",
            "teacher answers",
            "bake+tune",
            "eval",
        ]
        assert {"drift", "fidelity", "sweep"} <= set(job["result"]["eval"])  # the real quick eval
        assert job["result"]["forge"]["method"] == "profile" and job["result"]["forge"]["budget"] == "tiny"
        assert "checks" not in job["result"]["forge"]  # the held-out questions stay unseen
        summary = c.get("/v1/cards/tess-tiny").json()
        assert summary["owner"] == "alice" and not summary["public"]
        tiles = {t["id"]: t for t in c.get("/v1/studio/cards").json()["data"]}
        tile = tiles["tess-tiny"]
        assert tile["persona"]["name"] == "Tess Tiny" and tile["signature"] == "absent"
        assert tile["forge"]["budget"] == "tiny" and tile["base"]["model_id"]
        assert tile["can_manage"] and not tile["avatar"]
        reply = c.post(
            "/v1/chat/completions",
            json={
                "model": "base",
                "cards": [{"id": "tess-tiny", "strength": 0.5}],
                "messages": [{"role": "user", "content": "Hello"}],
                "max_tokens": 4,
                "temperature": 0,
            },
        )
        assert reply.status_code == 200, reply.text
        assert c.delete("/v1/cards/tess-tiny").status_code == 200


def test_progress_is_reported_and_a_running_job_can_be_cancelled(studio: Studio) -> None:
    forge = SlowForge(steps=40, pause=0.02)
    forge.gate = threading.Event()
    studio.app.state.studio.forge = forge
    with studio.client() as c:
        job = c.post("/v1/forge", json={"profile": {"name": "Slow Sam"}, "budget": "tiny"}).json()
        assert wait_until(lambda: c.get(f"/v1/forge/{job['id']}").json()["status"] == "running")
        forge.gate.set()
        assert wait_until(lambda: c.get(f"/v1/forge/{job['id']}").json()["done"] >= 3)
        now = c.get(f"/v1/forge/{job['id']}").json()
        assert now["stage"] == "teacher answers" and now["total"] == 40 and "loss" in now["figures"]
        assert 0 < now["progress"] < 1
        r = c.post(f"/v1/forge/{job['id']}/cancel")
        assert r.status_code == 200
        done = wait_job(c, job["id"], ("cancelled", "done", "failed"))
        assert done["status"] == "cancelled" and done["finished"] is not None
        assert c.get("/v1/cards/slow-sam").status_code == 404
        assert not (studio.jobs.folder / job["id"]).exists()  # scratch space is gone


def test_a_queued_job_is_cancelled_at_once_and_jobs_list_newest_first(studio: Studio) -> None:
    forge = SlowForge(steps=3)
    forge.gate = threading.Event()
    studio.app.state.studio.forge = forge
    with studio.client() as c:
        first = c.post("/v1/forge", json={"profile": {"name": "First One"}, "budget": "tiny"}).json()
        second = c.post("/v1/forge", json={"profile": {"name": "Second One"}, "budget": "tiny"}).json()
        assert c.get(f"/v1/forge/{second['id']}").json()["status"] == "queued"
        assert c.post(f"/v1/forge/{second['id']}/cancel").json()["status"] == "cancelled"
        listed = c.get("/v1/forge").json()["data"]  # what a reloaded page asks for
        ids = [j["id"] for j in listed]
        assert ids.index(second["id"]) < ids.index(first["id"])
        forge.gate.set()
        assert wait_job(c, first["id"], ("done", "failed"))["status"] == "done"
        assert forge.calls == 1  # the cancelled job never ran
        assert c.delete("/v1/cards/first-one").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"profile": {"identity": "no name"}}, 400, "needs a 'name'"),
        ({"profile": {"name": "X", "knowledge": ["just a fact"]}}, 400, "knowledge[0]"),
        ({"profile": {"name": "X", "colour": "red"}}, 400, "unknown field 'colour'"),
        ({"profile": {"name": "X", "id": "Not A Slug"}}, 400, "must be a slug"),
        ({"profile": {"name": "Base", "id": "base"}}, 400, "names the base model"),
        ({"profile": {"name": "X"}, "budget": "huge"}, 422, "budget"),
        ({"profile": "a string"}, 422, "profile"),
    ],
)
def test_bad_forge_requests_are_refused_in_one_line(
    studio: Studio, body: dict, status: int, says: str
) -> None:
    with studio.client() as c:
        assert says in one_line_error(c.post("/v1/forge", json=body), status)


def test_jobs_are_private_to_their_owner(studio: Studio) -> None:
    studio.app.state.studio.forge = SlowForge(steps=1)
    with studio.client("alice") as alice, studio.client("bob") as bob, studio.client("root") as root:
        job = alice.post("/v1/forge", json={"profile": {"name": "Alice Own"}, "budget": "tiny"}).json()
        missing = one_line_error(bob.get("/v1/forge/job_0000000000000000"), 404)
        assert one_line_error(bob.get(f"/v1/forge/{job['id']}"), 404) == missing.replace(
            "job_0000000000000000", job["id"]
        )
        assert one_line_error(bob.post(f"/v1/forge/{job['id']}/cancel"), 404)
        assert job["id"] not in [j["id"] for j in bob.get("/v1/forge").json()["data"]]
        assert job["id"] in [j["id"] for j in root.get("/v1/forge").json()["data"]]  # an admin sees all
        assert wait_job(alice, job["id"], ("done", "failed"))["status"] == "done"
        # bob cannot take alice's card id by forging it
        assert "another owner" in one_line_error(
            bob.post("/v1/forge", json={"profile": {"name": "Alice Own"}, "budget": "tiny"}), 409
        )
        assert one_line_error(bob.get("/v1/cards/alice-own/export"), 404)
        assert alice.delete("/v1/cards/alice-own").status_code == 200
    with httpx.Client(base_url=studio.url) as anonymous:
        assert one_line_error(anonymous.get("/v1/forge"), 401)
        assert one_line_error(anonymous.post("/v1/forge", json={"profile": {"name": "X"}}), 401)


def test_jobs_survive_a_server_restart_and_resume(world: Any, tmp_path: Path) -> None:
    """A job running when the server stops is queued again at the next start and finishes then."""
    forge = SlowForge(steps=200, pause=0.02)
    app, _ = start_studio(world, tmp_path, Keys(), forge)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        running = c.post("/v1/forge", json={"profile": {"name": "Long Lena"}, "budget": "tiny"}).json()
        waiting = c.post("/v1/forge", json={"profile": {"name": "Next Ned"}, "budget": "tiny"}).json()
        assert wait_until(lambda: c.get(f"/v1/forge/{running['id']}").json()["done"] >= 2)
    saved = json.loads((tmp_path / "studio" / "jobs" / f"{running['id']}.json").read_text())
    assert saved["status"] == "queued" and saved["restarts"] == 1 and saved["input"]["profile"]["name"]

    quick = SlowForge(steps=2)
    app, store = start_studio(world, tmp_path, Keys(), quick)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        jobs = {j["id"]: j for j in c.get("/v1/forge").json()["data"]}
        assert set(jobs) == {running["id"], waiting["id"]} and jobs[running["id"]]["restarts"] == 1
        assert wait_job(c, running["id"], ("done", "failed"))["status"] == "done"
        assert wait_job(c, waiting["id"], ("done", "failed"))["status"] == "done"
        assert {e.id for e in store.all()} == {"long-lena", "next-ned"}


def test_a_failing_forge_fails_its_job_with_the_reason(studio: Studio) -> None:
    def broken(engine: Engine, profile: Any, **kw: Any) -> Card:
        raise ValueError("the teacher model has no chat template: use an instruct model")

    studio.app.state.studio.forge = broken
    with studio.client() as c:
        job = c.post("/v1/forge", json={"profile": {"name": "Broke Bo"}, "budget": "tiny"}).json()
        done = wait_job(c, job["id"], ("done", "failed"))
        assert done["status"] == "failed" and done["error"].startswith(
            "the teacher model has no chat template"
        )
        assert c.get("/v1/cards/broke-bo").status_code == 404


def test_the_eval_figures_and_plots_reach_the_job_and_the_gallery(
    studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lifecard.server.studio.evaluate", fake_eval)
    studio.app.state.studio.forge = SlowForge(steps=1)
    with studio.client("alice") as c, studio.client("bob") as bob:
        job = c.post("/v1/forge", json={"profile": {"name": "Eve Val"}, "budget": "tiny"}).json()
        done = wait_job(c, job["id"], ("done", "failed"))
        assert done["status"] == "done" and done["result"]["eval"]["drift"] == 1.02
        assert done["result"]["plots"] == ["sweep.png"] and done["stages"][-1]["name"] == "eval"
        plot = c.get(f"/v1/forge/{job['id']}/plots/sweep.png")
        assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
        assert one_line_error(c.get(f"/v1/forge/{job['id']}/plots/other.png"), 404)
        assert one_line_error(bob.get(f"/v1/forge/{job['id']}/plots/sweep.png"), 404)
        tile = next(t for t in c.get("/v1/studio/cards").json()["data"] if t["id"] == "eve-val")
        assert tile["eval"]["recall"] == 0.5  # read back from the stored card's manifest
        assert c.delete("/v1/cards/eve-val").status_code == 200


def test_a_name_without_latin_letters_gets_its_own_id(studio: Studio) -> None:
    studio.app.state.studio.forge = SlowForge(steps=1)
    with studio.client() as c:
        a = c.post("/v1/forge", json={"profile": {"name": "小明"}, "budget": "tiny"}).json()
        b = c.post("/v1/forge", json={"profile": {"name": "小红"}, "budget": "tiny"}).json()
        assert a["card_id"].startswith("card-") and a["card_id"] != b["card_id"]
        for job in (a, b):
            assert wait_job(c, job["id"], ("done", "failed"))["status"] == "done"
            assert c.delete(f"/v1/cards/{job['card_id']}").status_code == 200


# --- importing and exporting ---------------------------------------------------------------------


def test_a_character_card_png_becomes_a_forge_job_and_exports_again(studio: Studio) -> None:
    studio.app.state.studio.forge = SlowForge(steps=2)
    persona = {
        "name": "Pip Ahoy",
        "description": "A parrot who sailed with pirates.",
        "personality": "loud",
        "first_mes": "Squawk!",
        "tags": ["bird", "pirate"],
        "creator": "tests",
    }
    png = write_png_card(persona)
    with studio.client() as c:
        r = c.post("/v1/cards/import?budget=tiny", files={"file": ("pip.png", png, "image/png")})
        assert r.status_code == 202, r.text
        job = r.json()["job"]
        assert job["kind"] == "import" and job["card_id"] == "pip-ahoy" and job["budget"] == "tiny"
        assert wait_job(c, job["id"], ("done", "failed"))["status"] == "done"
        tile = next(t for t in c.get("/v1/studio/cards").json()["data"] if t["id"] == "pip-ahoy")
        assert tile["avatar"]  # the PNG came with the card
        avatar = c.get("/v1/cards/pip-ahoy/avatar")
        assert avatar.status_code == 200 and avatar.headers["content-type"] == "image/png"
        exported = c.get("/v1/cards/pip-ahoy/export?format=png")
        assert exported.status_code == 200 and "pip-ahoy.png" in exported.headers["content-disposition"]
        back = read_character_card(exported.content, "pip-ahoy.png")
        as_json = c.get("/v1/cards/pip-ahoy/export?format=json").json()
        assert as_json["spec"] == "chara_card_v3" and as_json["data"]["name"] == back.persona["name"]
        assert c.delete("/v1/cards/pip-ahoy").status_code == 200


def test_a_life_card_through_import_is_stored_at_once(studio: Studio, tmp_path: Path) -> None:
    path = tmp_path / "owl.card"
    card(studio.store.base, "owl", rank=2).write(path)
    with studio.client() as c:
        r = c.post("/v1/cards/import", files={"file": ("owl.card", path.read_bytes())})
        assert r.status_code == 201 and r.json()["card"]["id"] == "owl"
        assert one_line_error(c.get("/v1/cards/owl/avatar"), 404)
        assert c.delete("/v1/cards/owl").status_code == 200


@pytest.mark.parametrize(
    ("name", "blob", "says"),
    [
        ("notes.txt", b"hello there", "not a character card"),
        ("broken.json", b'{"spec": "chara_card_v2", "data": {"description": "no name"}}', "broken.json"),
        ("bad.png", b"\x89PNG\r\n\x1a\nnot really", "bad.png"),
        ("cut.card", b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1}      x', "cut.card"),
    ],
)
def test_bad_imports_are_refused_in_one_line(studio: Studio, name: str, blob: bytes, says: str) -> None:
    with studio.client() as c:
        assert says in one_line_error(c.post("/v1/cards/import", files={"file": (name, blob)}), 400)


def test_the_page_and_its_files_are_served_without_a_key(studio: Studio) -> None:
    with httpx.Client(base_url=studio.url) as c:
        page = c.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert '<script src="/studio/app.js"' in page.text
        for path, kind in (("/studio/app.js", "javascript"), ("/studio/app.css", "text/css")):
            r = c.get(path)
            assert r.status_code == 200 and kind in r.headers["content-type"], path
        assert c.get("/studio/nope.js").status_code == 404
        assert "/v1/forge" not in c.get("/openapi.json").text  # the fuzzed spec is unchanged


def test_the_jobs_table_reloads_from_its_folder(tmp_path: Path) -> None:
    """Without a server: a job file written by one table is read by the next, a running job is queued
    again, an unreadable file is skipped, and finished jobs beyond `keep` are forgotten."""
    done: list[str] = []

    def work(job: Any, progress: Progress) -> str:
        done.append(job.id)
        return job.card_id

    jobs = Jobs(tmp_path, work, keep=2)
    made = [
        jobs.submit("alice", "profile", f"N{i}", f"n{i}", {"budget": "tiny", "seed": 0}) for i in range(4)
    ]
    (tmp_path / "job_garbage.json").write_text("{not json")
    again = Jobs(tmp_path, work, keep=2)
    assert [j.id for j in again.of("alice")] == [j.id for j in reversed(made)]
    again.start()
    assert again.wait_idle(10)
    again.stop()
    assert done == [j.id for j in made] and all(j.status == "done" for j in again.of("alice"))
    again.submit("alice", "profile", "N4", "n4", {})  # pruning keeps the last 2 finished
    assert len([j for j in again.of("alice") if not j.is_active]) == 2
    assert KEYS  # keys() and auth() are shared with the server tests
