"""API keys: who is calling. A key maps to an owner (whose private cards it may use) and may be admin.

Keys come from a keys file and/or the environment variable LIFECARD_API_KEYS:

  keys file, JSON   {"sk-alice-…": "alice", "sk-root-…": {"owner": "root", "admin": true}}
                    or [{"key": "sk-alice-…", "owner": "alice", "admin": false}, …]
  keys file, lines  `KEY OWNER [admin]`, one per line; blank lines and lines starting with # are skipped
  environment       LIFECARD_API_KEYS="sk-alice-…:alice,sk-root-…:root:admin"

With no key at all the server is open: every caller is the one implicit owner "local", an admin, and
the server listens on loopback only (the CLI refuses any other address). Keys are kept only as their
sha256, so a lookup compares digests, never the secret text itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_VAR = "LIFECARD_API_KEYS"
LOCAL_OWNER = "local"
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class KeysError(ValueError):
    """A keys file or LIFECARD_API_KEYS that cannot be read; the message says where and how to fix it."""


@dataclass(frozen=True)
class Caller:
    owner: str
    is_admin: bool = False

    def can_see(self, owner: str, public: bool) -> bool:
        return public or self.can_manage(owner)

    def can_manage(self, owner: str) -> bool:
        return self.is_admin or owner == self.owner


class Keys:
    def __init__(self, entries: dict[str, Caller] | None = None):
        self._by_digest = {_digest(key): caller for key, caller in (entries or {}).items()}

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, env: str | None = None) -> Keys:
        """Keys from `path` (JSON or lines) and from `env` (the value of LIFECARD_API_KEYS), merged."""
        entries: dict[str, Caller] = {}
        if path is not None:
            path = Path(path)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as e:
                raise KeysError(f"keys file {path} cannot be read ({e.strerror}): check the path") from e
            _merge(entries, _parse_file(text, str(path)), str(path))
        if env:
            _merge(entries, _parse_env(env), ENV_VAR)
        return cls(entries)

    @property
    def is_open(self) -> bool:
        """No key is configured: everyone is the implicit owner "local"."""
        return not self._by_digest

    @property
    def owners(self) -> list[str]:
        return sorted({c.owner for c in self._by_digest.values()})

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller an `Authorization: Bearer KEY` header names, or None (missing or unknown key)."""
        if self.is_open:
            return Caller(LOCAL_OWNER, is_admin=True)
        if not authorization:
            return None
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        return self._by_digest.get(_digest(key.strip()))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _entry(key: Any, owner: Any, admin: Any, where: str) -> tuple[str, Caller]:
    if not isinstance(key, str) or not key or any(c.isspace() for c in key):
        raise KeysError(f"{where}: a key must be a non-empty string without spaces, got {key!r}")
    if not isinstance(owner, str) or not _OWNER.match(owner):
        raise KeysError(
            f"{where}: owner {owner!r} of a key is not a name of 1-64 letters, digits, '_', '.', '@' or '-'"
        )
    if not isinstance(admin, bool):
        raise KeysError(f"{where}: 'admin' of owner {owner} must be true or false, got {admin!r}")
    return key, Caller(owner, admin)


def _parse_file(text: str, where: str) -> list[tuple[str, Caller]]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise KeysError(f"keys file {where} is not valid JSON ({e}): fix it") from e
        return _parse_json(data, where)
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) not in (2, 3) or (len(words) == 3 and words[2] != "admin"):
            raise KeysError(
                f"keys file {where} line {n}: expected `KEY OWNER [admin]`, got {len(words)} words"
            )
        out.append(_entry(words[0], words[1], len(words) == 3, f"keys file {where} line {n}"))
    return out


def _parse_json(data: Any, where: str) -> list[tuple[str, Caller]]:
    here = f"keys file {where}"
    if isinstance(data, dict):
        out = []
        for key, value in data.items():
            if isinstance(value, dict):
                out.append(_entry(key, value.get("owner"), value.get("admin", False), here))
            else:
                out.append(_entry(key, value, False, here))
        return out
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return [_entry(i.get("key"), i.get("owner"), i.get("admin", False), here) for i in data]
    raise KeysError(f"{here} must hold an object {{key: owner}} or a list of {{key, owner, admin}} objects")


def _parse_env(value: str) -> list[tuple[str, Caller]]:
    out = []
    for item in re.split(r"[,\n]", value):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "admin"):
            raise KeysError(f"{ENV_VAR}: expected comma-separated KEY:OWNER or KEY:OWNER:admin entries")
        out.append(_entry(parts[0], parts[1], len(parts) == 3, ENV_VAR))
    return out


def _merge(into: dict[str, Caller], entries: list[tuple[str, Caller]], where: str) -> None:
    for key, caller in entries:
        if key in into and into[key] != caller:
            raise KeysError(f"{where}: one key is given to both {into[key].owner} and {caller.owner}")
        into[key] = caller
