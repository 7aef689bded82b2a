"""The card store: a folder of `.card` files and one small JSON index of who owns what.

    <root>/<id>.card      each card, written atomically (temp file in the same folder, fsync, rename)
    <root>/index.json     {"format": 1, "cards": {id: entry}}, rewritten atomically on every change

An entry holds the owner, the public flag and a summary of the manifest, so listing a thousand cards
reads no card file. A card is validated in full (`Card.read`, then `check_card` against the served
base) before it is stored; what is in the store is always a card this server can mount.

Cards are parsed on first use and kept in a bounded LRU. A `Card` memory-maps its file, so a card
replaced or deleted while a request still holds it stays intact for that request (the old inode lives
on until the last map closes). Threads: every change runs under one lock; reads of the index are
plain dict reads of entries that are replaced, never mutated.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lifecard.atomic import fsync_dir, write_atomic
from lifecard.cards.base import BaseInfo, check_card
from lifecard.cards.card import Card
from lifecard.cards.validate import CardError

INDEX = "index.json"
INDEX_FORMAT = 1
_UPLOAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class StoreConflict(Exception):
    """The card id belongs to another owner (HTTP 409)."""


@dataclass(frozen=True)
class Entry:
    id: str
    name: str
    owner: str
    public: bool
    size: int  # file bytes
    digest: str  # the manifest's content_sha256
    created: str  # the manifest's `created`
    uploaded: float  # Unix seconds
    version: str
    description: str
    modules: list[dict[str, Any]]
    strength: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """The fields as a dict (shallow: asdict's deep copy is 50× slower, and a listing does 1,000)."""
        return dict(self.__dict__)


def summarize(card: Card, owner: str, public: bool, size: int) -> Entry:
    m = card.manifest
    modules = []
    for mod in m["modules"]:
        info: dict[str, Any] = {"kind": mod["kind"], "layers": len(mod["layers"])}
        if mod["kind"] == "lora":
            info |= {"rank": mod["rank"], "targets": list(mod["targets"])}
        modules.append(info)
    return Entry(
        id=card.id,
        name=card.name,
        owner=owner,
        public=public,
        size=size,
        digest=m["content_sha256"],
        created=m["created"],
        uploaded=time.time(),
        version=m["version"],
        description=m.get("description", ""),
        modules=modules,
        strength={k: float(v) for k, v in m["strength"].items()},
    )


class Store:
    def __init__(
        self,
        root: str | os.PathLike[str],
        base: BaseInfo,
        *,
        strict: bool = False,
        cache_size: int = 64,
        reserved: tuple[str, ...] = (),
    ):
        self.root, self.base, self.strict = Path(root), base, strict
        self.cache_size, self.reserved = cache_size, reserved
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], Card] = OrderedDict()  # (id, digest) -> Card
        self.entries: dict[str, Entry] = self._read_index()
        self._sweep()

    # --- reading ---------------------------------------------------------------------------------

    def get(self, card_id: str) -> Entry | None:
        return self.entries.get(card_id)

    def all(self) -> list[Entry]:
        return sorted(self.entries.values(), key=lambda e: e.id)

    def path(self, card_id: str) -> Path:
        return self.root / f"{card_id}.card"

    def load(self, entry: Entry) -> Card:
        """The parsed card of `entry` (cached); raises CardError if it no longer fits the base."""
        key = (entry.id, entry.digest)
        with self._lock:
            card = self._cache.get(key)
            if card is not None:
                self._cache.move_to_end(key)
                return card
        card = Card.read(self.path(entry.id))
        check_card(card, self.base, strict=self.strict)
        with self._lock:
            self._cache[(card.id, card.manifest["content_sha256"])] = card
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return card

    # --- changing ----------------------------------------------------------------------------------

    def put(
        self, blob: bytes, owner: str, *, public: bool | None = None, filename: str = "upload.card"
    ) -> tuple[Entry, bool, list[str]]:
        """Validate and store a card file's bytes for `owner`. Returns (entry, whether it is new,
        warnings). Raises CardError (invalid or unfit card, reserved id) or StoreConflict (the id is
        another owner's). `public` None keeps the flag of the card it replaces (else private)."""
        if not _UPLOAD_NAME.match(filename):
            filename = "upload.card"
        incoming = Path(tempfile.mkdtemp(dir=self.root, prefix=".incoming-"))
        try:
            tmp = incoming / filename
            with open(tmp, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            card = Card.read(tmp)
            warnings = check_card(card, self.base, strict=self.strict)
            if card.id in self.reserved:
                raise CardError(
                    f"card {filename} has id {card.id!r}, which names the base model on this server: "
                    "give the card another id"
                )
            with self._lock:
                old = self.entries.get(card.id)
                if old is not None and old.owner != owner:
                    raise StoreConflict(
                        f"a card with id {card.id!r} belongs to another owner: choose another id"
                    )
                keep_public = old.public if old is not None else False
                entry = summarize(card, owner, keep_public if public is None else public, len(blob))
                os.replace(tmp, self.path(card.id))
                fsync_dir(self.root)
                self._set(card.id, entry)
            return entry, old is None, warnings
        finally:
            shutil.rmtree(incoming, ignore_errors=True)

    def set_public(self, card_id: str, public: bool) -> Entry:
        with self._lock:
            entry = replace(self.entries[card_id], public=public)
            self._set(card_id, entry)
            return entry

    def delete(self, card_id: str) -> None:
        """Forget the card and remove its file; requests that already hold it finish on their copy."""
        with self._lock:
            self._set(card_id, None)
            with contextlib.suppress(FileNotFoundError):
                self.path(card_id).unlink()

    # --- the index -------------------------------------------------------------------------------

    def _set(self, card_id: str, entry: Entry | None) -> None:
        """Change one entry and write the index (caller holds the lock). The dict is replaced, not
        mutated, so readers on other threads never see it change under them."""
        entries = dict(self.entries)
        if entry is None:
            entries.pop(card_id, None)
        else:
            entries[card_id] = entry
        self._cache = OrderedDict((k, v) for k, v in self._cache.items() if k[0] != card_id)
        index = {"format": INDEX_FORMAT, "cards": {k: v.summary() for k, v in entries.items()}}
        write_atomic(self.root / INDEX, json.dumps(index, ensure_ascii=False, separators=(",", ":")))
        self.entries = entries

    def _read_index(self) -> dict[str, Entry]:
        path = self.root / INDEX
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != INDEX_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, this lifecard reads {INDEX_FORMAT}")
            return {k: Entry(**v) for k, v in data["cards"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise ValueError(
                f"the card store's index {path} cannot be read ({e}): restore it from a backup, "
                "or move the store folder aside and upload the cards again"
            ) from e

    def _sweep(self) -> None:
        """Drop entries whose file is gone and leftovers of interrupted uploads."""
        for leftover in self.root.glob(".incoming-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in self.root.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        missing = [k for k in self.entries if not self.path(k).is_file()]
        if missing:
            with self._lock:
                for card_id in missing:
                    self._set(card_id, None)
