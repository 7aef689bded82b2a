"""The studio: a page at `/` for people who will never write JSON, and the routes it needs beyond the
OpenAI-compatible API.

    GET  /                          the page (static/index.html; app.js and app.css under /studio/)
    GET  /v1/studio/cards           every card the caller may use, with what the gallery shows
    POST /v1/cards/import           a .card file (stored at once) or a Character Card V1/V2/V3 PNG,
                                    JSON or CHARX (becomes a forge job: its persona, baked)
    GET  /v1/cards/{id}/avatar      the avatar a character card brought, if any
    GET  /v1/cards/{id}/export      the card's persona as a Character Card V3 (?format=png|json)
    POST /v1/forge                  {profile, budget, seed} → a forge job (202)
    GET  /v1/forge                  the caller's jobs, newest first
    GET  /v1/forge/{id}             one job: status, stage, progress, figures, result
    POST /v1/forge/{id}/cancel      cancel it (queued: at once; running: at its next step)
    GET  /v1/forge/{id}/plots/{name} a PNG plot of the job's eval

Jobs run one at a time on a worker thread (`jobs.Jobs`), on the model directly, beside the
scheduler; a made card goes into the caller's store exactly as an upload does (validated in full).
These routes stay out of /openapi.json for now: the spec is fuzzed operation by operation, and a
fuzzed forge would train cards in the background of the schema tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from lifecard.cards.card import Card
from lifecard.cards.validate import CardError, parse_header
from lifecard.engine.generate import Engine
from lifecard.forge.profile import Profile
from lifecard.forge.progress import ForgeError, Progress
from lifecard.model.sockets import SocketBank
from lifecard.server.app import ApiError, Server, _upload, caller_of, not_found, store_upload
from lifecard.server.auth import Caller
from lifecard.server.jobs import Job, Jobs, JobsFull
from lifecard.server.store import Entry

STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {
    # the page shows text from strangers' cards: it only ever sets textContent, and this says so too
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
AVATAR_TYPES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg", b"GIF8": "gif", b"RIFF": "webp"}
MAX_AVATAR_BYTES = 8 << 20

Budget = Literal["tiny", "quick", "standard"]
# lifecard.forge.recipe.forge_profile: (engine, profile, *, budget, seed, progress, checkpoint_dir) -> Card
ForgeFn = Callable[..., Card]


class ForgeRequest(BaseModel):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid")
    profile: dict[str, Any] = Field(description="a profile: name, identity, tone, preferences, values, …")
    budget: Budget = Field("quick", description="tiny (a demo, seconds), quick (minutes), standard")
    seed: int = Field(0, ge=0, lt=2**32)


def evaluate(engine: Engine, card: Card, plots: Path, progress: Progress) -> tuple[Card, list[str]]:
    """Measure a card the studio has just forged (`lifecard eval --quick`): the card to store, with
    its manifest's `eval` filled in, and the file names of the PNG plots written into `plots`."""
    from lifecard.eval.report import QUICK, plot_sweep, with_eval
    from lifecard.eval.report import evaluate as measure

    progress.start("eval", 1)
    figures = measure(engine, card, QUICK)
    plots.mkdir(parents=True, exist_ok=True)
    plot_sweep(figures, plots / "sweep.png", f"{card.name}: effect and drift against strength")
    progress.advance()
    return with_eval(card, figures), ["sweep.png"]


EVAL_STAGES = 1  # progress stages `evaluate` reports (for the overall progress estimate)


def side_engine(engine: Engine) -> Engine:
    """The served model's weights with a bank of their own: a forge's teacher runs and the eval's
    mounts never touch the bank that the scheduler's worker owns."""
    bank = SocketBank(engine.cfg, num_slots=2, max_rank=8, device=engine.device)
    return Engine(engine.model, engine.tokenizer, bank, engine.source, engine.base)


class Studio:
    """What the studio routes share: the server, the job table, the forge function (replaceable in
    tests), and the folder of avatars that character cards brought."""

    def __init__(self, server: Server, forge: ForgeFn | None = None):
        self.server = server
        root = server.store.root / "studio"
        self.avatars = root / "avatars"
        self.avatars.mkdir(parents=True, exist_ok=True)
        digests = {e.digest for e in server.store.entries.values()}
        for path in self.avatars.iterdir():  # avatars of cards deleted or replaced since
            if path.stem not in digests:
                path.unlink(missing_ok=True)
        self.forge = forge
        self.jobs = Jobs(root / "jobs", self.work)
        self._details: dict[tuple[str, str], dict[str, Any]] = {}  # (id, digest) -> gallery fields

    # --- the work of one job (on the jobs' worker thread) ----------------------------------------

    def work(self, job: Job, progress: Progress) -> str:
        server, scratch = self.server, self.jobs.scratch(job)
        scratch.mkdir(parents=True, exist_ok=True)
        profile = Profile.from_mapping(job.input["profile"], "profile")
        forge = self.forge
        if forge is None:  # the training code loads with the first job, not with the server
            from lifecard.forge.recipe import forge_profile

            forge = forge_profile
        engine = side_engine(server.engine)
        card = forge(
            engine,
            profile,
            budget=job.input["budget"],
            seed=job.input["seed"],
            progress=progress,
            checkpoint_dir=scratch / "checkpoints",
        )
        card, plots = evaluate(engine, card, scratch / "plots", progress)
        path = scratch / f"{card.id}.card"
        card.write(path)
        entry, _, warnings = server.store.put(path.read_bytes(), job.owner, filename=path.name)
        avatar = next(iter(scratch.glob("avatar.*")), None)
        if avatar is not None:
            shutil.move(avatar, self.avatars / f"{entry.digest}{avatar.suffix}")
        m = card.manifest
        job.result = {"forge": _forge_summary(m.get("forge", {})), "eval": m.get("eval", {}), "plots": plots}
        job.result["warnings"] = warnings
        return entry.id

    # --- the gallery -------------------------------------------------------------------------------

    def avatar(self, entry: Entry) -> Path | None:
        return next(iter(self.avatars.glob(f"{entry.digest}.*")), None)

    def details(self, entry: Entry) -> dict[str, Any]:
        """What a gallery tile shows beyond the store's summary, read from the card's manifest only."""
        key = (entry.id, entry.digest)
        cached = self._details.get(key)
        if cached is None:
            m = read_manifest(self.server.store.path(entry.id))
            persona = m.get("persona", {})
            cached = {
                "persona": {
                    k: persona[k]
                    for k in ("name", "description", "personality", "first_mes", "tags", "creator")
                    if k in persona
                },
                "base": {k: m["base"].get(k) for k in ("family", "model_id", "hidden_size", "num_layers")},
                "forge": _forge_summary(m.get("forge", {})),
                "eval": m.get("eval", {}),
                "signature": Card(m, {}).signature_status(),  # reads only the manifest
            }
            if len(self._details) > 1024:
                self._details.clear()
            self._details[key] = cached
        return cached


def read_manifest(path: Path) -> dict[str, Any]:
    """A card's manifest from its header alone (the store validated the whole file when it took it)."""
    with open(path, "rb") as f:
        size = path.stat().st_size
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else 0
        return parse_header(head + f.read(min(n, max(size - 8, 0))), size, path.name).manifest


def _forge_summary(forge: dict[str, Any]) -> dict[str, Any]:
    """How the card was made, without the held-out questions the eval asks (those stay unseen)."""
    out = {k: v for k, v in forge.items() if k in ("method", "budget", "seed", "steps", "seconds")}
    parts = forge.get("parts")
    if isinstance(parts, list):
        out["parts"] = [
            {
                k: v
                for k, v in p.items()
                if isinstance(v, str | int | float) and not isinstance(v, bool) and not k.endswith("sha256")
            }
            for p in parts
            if isinstance(p, dict)
        ]
    return out


def is_life_card(blob: bytes) -> bool:
    """A safetensors file: an 8-byte header length that fits the file, then the JSON header."""
    if len(blob) < 10:
        return False
    n = int.from_bytes(blob[:8], "little")
    return 0 < n <= len(blob) - 8 and blob[8:9] == b"{"


def with_id(raw: dict[str, Any]) -> dict[str, Any]:
    """The profile with an `id`: given, else a slug of the name, else (a name in another script, like
    小明) `card-` and a short digest of the name, so two such cards do not replace each other."""
    if raw.get("id") or not isinstance(raw.get("name"), str) or not raw["name"].strip():
        return raw
    name = raw["name"].strip()
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48].strip("-")
    return raw | {"id": slug or "card-" + hashlib.sha256(name.encode()).hexdigest()[:8]}


def profile_from_persona(persona: dict[str, Any]) -> dict[str, Any]:
    """A character card's persona as a profile (bake only: it has no tone.like and no knowledge)."""
    tags = [str(t).strip() for t in persona.get("tags") or [] if str(t).strip()]
    raw = {
        "name": persona.get("name"),
        "identity": persona.get("description"),
        "tone": {"description": persona["personality"]} if persona.get("personality") else None,
        "scenario": persona.get("scenario"),
        "greeting": persona.get("first_mes"),
        "tags": tags,
        "creator": persona.get("creator"),
    }
    return with_id({k: v for k, v in raw.items() if v})


def expected_stages(profile: Profile) -> int:
    """The forge's progress stages for this profile: steer (contrast) when it has a tone to steer
    toward, the teacher's answers, the LoRA's training (bake, with the tune's examples mixed in),
    then the eval's."""
    return int(bool(profile.like)) + 2 + EVAL_STAGES


def register(app: FastAPI, server: Server, forge: ForgeFn | None = None) -> Studio:
    """Add the page and the studio routes to `app`; the job worker starts and stops with the app."""
    studio = Studio(server, forge)
    app.state.studio = studio
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state:
            studio.jobs.start()
            try:
                yield state
            finally:
                await asyncio.to_thread(studio.jobs.stop)

    app.router.lifespan_context = lifespan
    _page_routes(app)
    _card_routes(app, studio)
    _forge_routes(app, studio)
    return studio


# --- routes --------------------------------------------------------------------------------------


def _page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    app.mount("/studio", StaticFiles(directory=STATIC), name="studio")


def _card_routes(app: FastAPI, studio: Studio) -> None:
    server = studio.server

    def visible(card_id: str, caller: Caller) -> Entry:
        entry = server.visible(card_id, caller)
        if entry is None:
            raise not_found("card", card_id, "id", "card_not_found")
        return entry

    @app.get("/v1/studio/cards", include_in_schema=False)
    async def gallery(request: Request) -> Any:
        caller = caller_of(request)

        def tiles() -> list[dict[str, Any]]:
            out = []
            for e in server.store.all():
                if not caller.can_see(e.owner, e.public):
                    continue
                try:
                    details = studio.details(e)
                except (OSError, CardError):  # deleted or replaced while listing
                    continue
                extra = {"avatar": studio.avatar(e) is not None, "can_manage": caller.can_manage(e.owner)}
                out.append(e.summary() | details | extra)
            return out

        return JSONResponse({"object": "list", "data": await asyncio.to_thread(tiles)})

    @app.get("/v1/cards/{card_id}/avatar", include_in_schema=False)
    async def avatar(card_id: str, request: Request) -> Any:
        path = studio.avatar(visible(card_id, caller_of(request)))
        if path is None:
            raise ApiError(404, f"card {card_id!r} has no avatar", param="id", code="no_avatar")
        media = "image/" + path.suffix.lstrip(".")
        return FileResponse(path, media_type=media, headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/v1/cards/{card_id}/export", include_in_schema=False)
    async def export(card_id: str, request: Request, format: Literal["png", "json"] = "png") -> Any:
        """The card's persona as a Character Card V3, for chat front-ends (its modules stay here)."""
        from lifecard.cards.charcard import CharacterCardError, to_character_card_v3, write_png_card

        entry = visible(card_id, caller_of(request))
        try:
            persona = (await asyncio.to_thread(read_manifest, server.store.path(entry.id)))["persona"]
        except (OSError, CardError) as e:  # deleted in the meantime
            raise not_found("card", card_id, "id", "card_not_found") from e
        try:
            if format == "json":
                blob = json.dumps(to_character_card_v3(persona), ensure_ascii=False, indent=2).encode()
                media = "application/json"
            else:
                path = studio.avatar(entry)
                png = path.read_bytes() if path is not None and path.suffix == ".png" else None
                blob, media = await asyncio.to_thread(write_png_card, persona, png), "image/png"
        except CharacterCardError as e:
            raise ApiError(400, str(e), param="id", code="cannot_export") from e
        headers = {"Content-Disposition": f'attachment; filename="{entry.id}.{format}"'}
        return Response(blob, media_type=media, headers=headers)

    @app.post("/v1/cards/import", include_in_schema=False)
    async def import_card(
        request: Request, public: bool | None = None, budget: Budget = "quick", seed: int = 0
    ) -> Any:
        """A `.card` is stored as by `POST /v1/cards` (201, or 200 when it replaced one); a character
        card becomes a forge job of its persona (202)."""
        caller = caller_of(request)
        blob, filename = await _upload(request)
        if is_life_card(blob):
            entry, is_new, warnings = await store_upload(server, blob, caller.owner, public, filename)
            body = {"object": "card", "card": entry.summary() | {"warnings": warnings}}
            return JSONResponse(body, 201 if is_new else 200)

        from lifecard.cards.charcard import CharacterCardError, read_character_card

        try:
            character = await asyncio.to_thread(read_character_card, blob, filename)
        except CharacterCardError as e:
            raise ApiError(400, str(e), param="file", code="invalid_character_card") from e
        try:
            profile = Profile.from_mapping(profile_from_persona(character.persona), filename)
        except ForgeError as e:
            raise ApiError(400, str(e), param="file", code="invalid_profile") from e
        raw = profile_from_persona(character.persona)
        job = submit(studio, caller, "import", profile, {"profile": raw, "budget": budget, "seed": seed})
        kind = _avatar_kind(character.avatar)
        if kind is not None and character.avatar is not None:
            scratch = studio.jobs.scratch(job)
            scratch.mkdir(parents=True, exist_ok=True)
            (scratch / f"avatar.{kind}").write_bytes(character.avatar)
        return JSONResponse({"object": "forge.job", "job": job.public()}, 202)


def _avatar_kind(blob: bytes | None) -> str | None:
    if blob is None or len(blob) > MAX_AVATAR_BYTES:
        return None
    for magic, kind in AVATAR_TYPES.items():
        if blob.startswith(magic) and (kind != "webp" or blob[8:12] == b"WEBP"):
            return kind
    return None


def submit(studio: Studio, caller: Caller, kind: str, profile: Profile, input: dict[str, Any]) -> Job:
    """Queue a forge job, refusing at once what would fail at its end: an id that names the base or
    belongs to another owner."""
    server = studio.server
    if profile.id in server.store.reserved or server.is_base(profile.id):
        raise ApiError(
            400,
            f"the id {profile.id!r} names the base model on this server: give the card another id",
            param="profile.id",
            code="invalid_profile",
        )
    old = server.store.get(profile.id)
    if old is not None and old.owner != caller.owner:
        raise ApiError(
            409,
            f"a card with id {profile.id!r} belongs to another owner: choose another id",
            param="profile.id",
            code="card_exists",
        )
    try:
        return studio.jobs.submit(
            caller.owner, kind, profile.name, profile.id, input, expected_stages(profile)
        )
    except JobsFull as e:
        raise ApiError(
            429, str(e), type="rate_limit_error", code="queue_full", headers={"Retry-After": "10"}
        ) from e


def _forge_routes(app: FastAPI, studio: Studio) -> None:
    jobs = studio.jobs

    def job_of(job_id: str, caller: Caller) -> Job:
        """The caller's job; someone else's answers exactly like one that does not exist."""
        job = jobs.get(job_id)
        if job is None or not caller.can_manage(job.owner):
            raise not_found("forge job", job_id, "id", "job_not_found")
        return job

    @app.post("/v1/forge", status_code=202, include_in_schema=False)
    async def forge(body: ForgeRequest, request: Request) -> Any:
        caller = caller_of(request)
        raw = with_id(body.profile)
        try:
            profile = Profile.from_mapping(raw, "profile")
        except ForgeError as e:
            raise ApiError(400, str(e), param="profile", code="invalid_profile") from e
        job = submit(
            studio, caller, "profile", profile, {"profile": raw, "budget": body.budget, "seed": body.seed}
        )
        return JSONResponse(job.public(), 202)

    @app.get("/v1/forge", include_in_schema=False)
    async def list_jobs(request: Request) -> Any:
        caller = caller_of(request)
        mine = jobs.of(None if caller.is_admin else caller.owner)
        return {"object": "list", "data": [j.public() for j in mine], "waiting": jobs.waiting}

    @app.get("/v1/forge/{job_id}", include_in_schema=False)
    async def get_job(job_id: str, request: Request) -> Any:
        return job_of(job_id, caller_of(request)).public()

    @app.post("/v1/forge/{job_id}/cancel", include_in_schema=False)
    async def cancel_job(job_id: str, request: Request) -> Any:
        job = job_of(job_id, caller_of(request))
        return jobs.cancel(job.id).public()

    @app.get("/v1/forge/{job_id}/plots/{name}", include_in_schema=False)
    async def plot(job_id: str, name: str, request: Request) -> Any:
        job = job_of(job_id, caller_of(request))
        if name not in job.result.get("plots", []):
            raise ApiError(404, f"job {job_id} has no plot {name!r}", param="name", code="plot_not_found")
        return FileResponse(jobs.scratch(job) / "plots" / name, media_type="image/png")
