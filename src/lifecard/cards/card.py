"""A life card in memory: its manifest and its tensors, read from and written to one `.card` file.

The file is safetensors (docs/card-format.md): `__metadata__` holds the format version and the
manifest JSON; the tensors are

    lora.{layer}.{proj}.A   [r, in]     lora.{layer}.{proj}.B   [out, r]     steer.{layer}   [hidden]

Reading memory-maps the file (a private copy-on-write map: the tensors are views of it, nothing is
copied) and validates everything in validate.py before returning; a `Card` therefore always holds a
well-formed card. Whether it fits a given model is `base.check_card`'s question.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor

from lifecard.atomic import write_atomic
from lifecard.cards import validate
from lifecard.cards.base import BaseInfo
from lifecard.cards.validate import (
    DTYPE_CODES,
    DTYPES,
    FORMAT_KEY,
    FORMAT_VERSION,
    MANIFEST_KEY,
    PROJECTIONS,
    CardError,
    TensorEntry,
    check_extents,
    check_finite,
    check_manifest,
    check_tensors,
    content_digest,
    count_nonfinite,
    parse_header,
    tensor_bytes,
)

LoraFactors = dict[tuple[int, str], tuple[Tensor, Tensor]]  # (layer, proj) -> (A [r, in], B [out, r])


@dataclass(frozen=True, eq=False, repr=False)
class Card:
    """One card. Treat `manifest` and `tensors` as read-only: `write` re-validates and re-digests
    whatever they hold, but the derived views (`lora`, `steer`) are computed once."""

    manifest: dict[str, Any]
    tensors: Mapping[str, Tensor]  # file name -> tensor, as stored (dtype F32/F16/BF16)
    path: Path | None = None  # where it was read from, if it was
    digest_ok: bool | None = None  # True: content_sha256 matches the content; None: not checked

    # ------------------------------------------------------------ reading

    @classmethod
    def read(cls, path: str | os.PathLike[str], *, verify_digest: bool = True) -> Card:
        """Read and validate a card file; raises CardError (one sentence naming file, field and fix)."""
        path = Path(path)
        label = path.name
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0 or size > validate.MAX_FILE_BYTES:
                parse_header(b"", size, label)  # raises the size error
            # ACCESS_COPY: the tensors may be written to without touching the file
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        header = parse_header(mm, size, label)
        manifest, entries = header.manifest, list(header.entries.values())
        _refuse(check_manifest(manifest, label))
        _refuse(check_tensors(manifest, {e.name: (e.dtype, e.shape) for e in entries}, label))
        _refuse(check_extents(entries, label))

        view = memoryview(mm)
        try:
            # one vectorised pass per run of same-dtype tensors; per tensor only to name a culprit
            if any(count_nonfinite(dtype, view[b:e]) for dtype, b, e in _runs(entries)):
                _refuse(check_finite(((e.name, e.dtype, view[e.begin : e.end]) for e in entries), label))
            if verify_digest:
                chunks = ((e.name, e.dtype, e.shape, view[e.begin : e.end]) for e in entries)
                if content_digest(manifest, chunks) != manifest["content_sha256"]:
                    raise CardError(
                        f"card {label} fails its content digest (content_sha256): it was changed or damaged "
                        "after it was made; get a fresh copy or forge it again"
                    )
        finally:
            view.release()

        data = torch.frombuffer(mm, dtype=torch.uint8)  # holds a reference to the map
        tensors = {e.name: _as_tensor(data[e.begin : e.end], e) for e in header.entries.values()}
        return cls(manifest, tensors, path, digest_ok=True if verify_digest else None)

    # ------------------------------------------------------------ making

    @classmethod
    def new(
        cls,
        *,
        id: str,
        name: str,
        base: BaseInfo,
        persona: Mapping[str, Any] | None = None,
        description: str = "",
        version: str = "1.0.0",
        created: str | None = None,
        lora: Mapping[tuple[int, str], tuple[Tensor, Tensor]] | None = None,
        lora_alpha: float | None = None,
        lora_module_scale: float = 1.0,
        steer: Mapping[int, Tensor] | Tensor | None = None,
        steer_module_scale: float = 1.0,
        strength: Mapping[str, float] | None = None,
        forge: Mapping[str, Any] | None = None,
        eval: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        dtype: torch.dtype | None = None,
    ) -> Card:
        """A validated card from its parts (for forges and scripts); `write` it to keep it.

        lora: (layer, proj) -> (A [r, in], B [out, r]), one rank for all, covering every listed layer ×
              target; alpha defaults to the rank (α/r = 1).
        steer: layer -> [hidden], or a [num_layers, hidden] tensor whose all-zero rows are left out.
        strength: default 1, range [0, 2], or [-2, 2] when the card steers (negative steers away).
        extra: more top-level manifest fields; names must start with "x-".
        dtype: store every tensor in this dtype (float32, float16, bfloat16); default: as given.
        """
        label = id
        tensors: dict[str, Tensor] = {}
        modules: list[dict[str, Any]] = []
        if lora:
            ranks = sorted({int(a.shape[0]) for a, _ in lora.values()})
            if len(ranks) > 1:
                raise CardError(
                    f"card {label} has LoRA pairs of ranks {ranks}, a card has one rank: "
                    "pad the smaller ones with zero rows (A) and columns (B)"
                )
            layers = sorted({layer for layer, _ in lora})
            targets = [p for p in PROJECTIONS if any(q == p for _, q in lora)]
            unknown = sorted({q for _, q in lora} - set(PROJECTIONS))
            if unknown:
                raise CardError(
                    f"card {label} has LoRA for {unknown[0]}, not a projection a card can target "
                    f"({', '.join(PROJECTIONS)}): leave it out"
                )
            missing = [(layer, p) for layer in layers for p in targets if (layer, p) not in lora]
            if missing:
                raise CardError(
                    f"card {label} has LoRA pairs that do not cover every layer × target "
                    f"(layer {missing[0][0]} {missing[0][1]} is missing, {len(missing)} in all): "
                    "add zero factors for them"
                )
            for (layer, p), (a, b) in sorted(lora.items()):
                tensors[f"lora.{layer}.{p}.A"] = _stored(a, dtype)
                tensors[f"lora.{layer}.{p}.B"] = _stored(b, dtype)
            rank = ranks[0]
            modules.append(
                {
                    "kind": "lora",
                    "rank": rank,
                    "alpha": float(rank if lora_alpha is None else lora_alpha),
                    "targets": targets,
                    "layers": layers,
                    "scale": float(lora_module_scale),
                }
            )
        if steer is not None:
            if isinstance(steer, Tensor):
                rows = {i: steer[i] for i in range(steer.shape[0]) if bool(steer[i].any())}
            else:
                rows = dict(steer)
            for layer, v in sorted(rows.items()):
                tensors[f"steer.{layer}"] = _stored(v, dtype)
            if rows:
                modules.append({"kind": "steer", "layers": sorted(rows), "scale": float(steer_module_scale)})

        steers = any(m["kind"] == "steer" for m in modules)
        stamp = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        manifest: dict[str, Any] = {
            "id": id,
            "name": name,
            "version": version,
            "created": created or stamp,
            "description": description,
            "persona": {"name": name, **(persona or {})},
            "base": base.to_manifest(),
            "modules": modules,
            "strength": dict(strength or {"default": 1.0, "min": -2.0 if steers else 0.0, "max": 2.0}),
            "forge": dict(forge or {"method": "manual"}),
            "eval": dict(eval or {}),
            **(extra or {}),
            "content_sha256": "0" * 64,  # a placeholder the digest does not cover
        }
        _check_content(manifest, tensors, label)
        card = cls(manifest, tensors, None, digest_ok=True)
        manifest["content_sha256"] = card.digest()
        return card

    def signed(self, private_key: bytes) -> Card:
        """This card with an Ed25519 `signature` over its content digest (needs `cryptography`).
        private_key: the 32-byte raw Ed25519 private key."""
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        except ImportError as e:
            raise RuntimeError(
                "signing a card needs the cryptography package: pip install cryptography"
            ) from e
        key = Ed25519PrivateKey.from_private_bytes(private_key)
        digest = self.digest()
        signature = {
            "alg": "ed25519",
            "public_key": key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex(),
            "value": key.sign(bytes.fromhex(digest)).hex(),
        }
        manifest = {**self.manifest, "content_sha256": digest, "signature": signature}
        return Card(manifest, self.tensors, self.path, digest_ok=True)

    # ------------------------------------------------------------ writing

    def write(self, path: str | os.PathLike[str]) -> None:
        """Validate, digest and write atomically: a temp file in the same folder, fsync, rename.

        On failure nothing is left behind and a file already at `path` is untouched. The digest is
        recomputed; a signature is kept only if it still signs that digest."""
        path = Path(path)
        label = path.name
        digest = self.digest()
        manifest = dict(self.manifest)
        if manifest.get("content_sha256") != digest:
            manifest.pop("signature", None)
        manifest["content_sha256"] = digest
        _check_content(manifest, self.tensors, label)
        metadata = {
            FORMAT_KEY: FORMAT_VERSION,
            MANIFEST_KEY: json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        }
        blob = safetensors.torch.save({n: t.contiguous() for n, t in self.tensors.items()}, metadata=metadata)
        header_bytes = int.from_bytes(blob[:8], "little")
        if header_bytes > validate.MAX_HEADER_BYTES:
            raise CardError(
                f"card {label} would have a {header_bytes}-byte header, over the limit of "
                f"{validate.MAX_HEADER_BYTES} bytes: "
                "shorten the manifest (persona, character_book, eval)"
            )
        if len(blob) > validate.MAX_FILE_BYTES:
            raise CardError(
                f"card {label} would be {len(blob)} bytes, over the limit of "
                f"{validate.MAX_FILE_BYTES} bytes: forge it with a lower rank or fewer layers"
            )
        write_atomic(path, blob)

    # ------------------------------------------------------------ what the engine uses

    @property
    def label(self) -> str:
        """How messages name the card: its file name, or its id when it has no file."""
        return self.path.name if self.path is not None else str(self.manifest.get("id", "?"))

    @property
    def id(self) -> str:
        return str(self.manifest["id"])

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def base(self) -> BaseInfo:
        return BaseInfo.from_manifest(self.manifest["base"])

    def _module(self, kind: str) -> dict[str, Any] | None:
        return next((m for m in self.manifest["modules"] if m["kind"] == kind), None)

    @property
    def lora_module(self) -> dict[str, Any] | None:
        return self._module("lora")

    @property
    def steer_module(self) -> dict[str, Any] | None:
        return self._module("steer")

    @cached_property
    def lora(self) -> LoraFactors:
        """(layer, proj) -> (A [r, in], B [out, r]) as stored, unscaled."""
        m = self.lora_module
        if m is None:
            return {}
        t = self.tensors
        return {
            (layer, p): (t[f"lora.{layer}.{p}.A"], t[f"lora.{layer}.{p}.B"])
            for layer in m["layers"]
            for p in m["targets"]
        }

    @property
    def lora_scale(self) -> float:
        """α / r of the LoRA module (0.0 when the card has none)."""
        m = self.lora_module
        return float(m["alpha"]) / m["rank"] if m is not None else 0.0

    @cached_property
    def steer(self) -> Tensor | None:
        """[num_layers, hidden] as stored, unscaled; zero rows for layers the card does not steer."""
        m = self.steer_module
        if m is None:
            return None
        vectors = {layer: self.tensors[f"steer.{layer}"] for layer in m["layers"]}
        base = self.manifest["base"]
        dtype = next(iter(vectors.values())).dtype
        out = torch.zeros(base["num_layers"], base["hidden_size"], dtype=dtype)
        for layer, v in vectors.items():
            out[layer] = v
        return out

    @property
    def default_strength(self) -> float:
        return float(self.manifest["strength"]["default"])

    @property
    def strength_range(self) -> tuple[float, float]:
        s = self.manifest["strength"]
        return float(s["min"]), float(s["max"])

    @property
    def nbytes(self) -> int:
        """Bytes of tensor data (what mounting it costs at its stored dtype)."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def _strength(self, strength: float | None) -> float:
        if strength is None:
            return self.default_strength
        lo, hi = self.strength_range
        if not lo <= strength <= hi:
            raise CardError(
                f"card {self.label} takes a strength in [{lo}, {hi}] (its manifest's strength.min/max), "
                f"not {strength}: pass one within the range"
            )
        return float(strength)

    def lora_factors(self, strength: float | None = None) -> LoraFactors:
        """What `SocketBank.write(slot, lora=...)` takes: (layer, proj) -> (A, B · α/r · scale · strength).
        strength: within `strength_range`; None means the card's default."""
        m = self.lora_module
        if m is None:
            return {}
        factor = self.lora_scale * float(m.get("scale", 1.0)) * self._strength(strength)
        return {key: (a.float(), b.float() * factor) for key, (a, b) in self.lora.items()}  # scaled in fp32

    def steer_vector(self, strength: float | None = None) -> Tensor | None:
        """What `SocketBank.write(slot, steer=...)` takes: [num_layers, hidden] · scale · strength,
        or None when the card does not steer."""
        m, v = self.steer_module, self.steer
        if m is None or v is None:
            return None
        return v.float() * (float(m.get("scale", 1.0)) * self._strength(strength))

    # ------------------------------------------------------------ integrity

    def digest(self) -> str:
        """The content digest of what this card holds now (compare with manifest["content_sha256"])."""
        chunks = ((n, DTYPE_CODES[t.dtype], tuple(t.shape), tensor_bytes(t)) for n, t in self.tensors.items())
        return content_digest(self.manifest, chunks)

    def signature_status(self) -> str:
        """'absent', 'verified', 'invalid', or 'present, not verified' (when `cryptography` is not
        installed). 'verified' means the signature signs the manifest's content_sha256 with the key it
        names; whether that key is trusted, and whether the digest matches the content (`digest_ok`),
        are separate questions."""
        sig = self.manifest.get("signature")
        if sig is None:
            return "absent"
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError:
            return "present, not verified"
        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(sig["public_key"]))
            key.verify(bytes.fromhex(sig["value"]), bytes.fromhex(self.manifest["content_sha256"]))
        except (InvalidSignature, ValueError):
            return "invalid"
        return "verified"

    def __repr__(self) -> str:
        kinds = "+".join(m["kind"] for m in self.manifest["modules"]) or "prompt only"
        return f"Card({self.manifest.get('id')!r}, {kinds}, {len(self.tensors)} tensors, {self.nbytes} bytes)"


# ---------------------------------------------------------------- helpers


def _refuse(problems: list[str]) -> None:
    if problems:
        raise CardError(problems)


def _runs(entries: list[TensorEntry]) -> Iterator[tuple[str, int, int]]:
    """(dtype, begin, end) of each maximal run of file-adjacent tensors sharing a dtype."""
    run: list[Any] = []
    for e in sorted(entries, key=lambda e: e.begin):
        if run and run[0] == e.dtype and run[2] == e.begin:
            run[2] = e.end
        else:
            if run:
                yield run[0], run[1], run[2]
            run = [e.dtype, e.begin, e.end]
    if run:
        yield run[0], run[1], run[2]


def _as_tensor(raw: Tensor, e: TensorEntry) -> Tensor:
    """A uint8 view of the map -> the tensor it stores (copied only if misaligned for its dtype)."""
    dtype = DTYPES[e.dtype]
    if raw.storage_offset() % dtype.itemsize:
        raw = raw.clone()
    return raw.view(dtype).view(e.shape)


def _stored(t: Tensor, dtype: torch.dtype | None) -> Tensor:
    return t.detach().to("cpu", dtype or t.dtype).contiguous()


def _dtype_code(dtype: torch.dtype) -> str:
    """The safetensors code of a torch dtype (what the file would say), refused ones included."""
    other = {
        torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
        torch.uint8: "U8", torch.bool: "BOOL",
    }  # fmt: skip
    return DTYPE_CODES.get(dtype) or other.get(dtype) or str(dtype).removeprefix("torch.")


def _check_content(manifest: dict[str, Any], tensors: Mapping[str, Tensor], label: str) -> None:
    """All of a card's checks, on a manifest and tensors in memory (before making or writing a card)."""
    _refuse(check_manifest(manifest, label))
    table = {n: (_dtype_code(t.dtype), tuple(t.shape)) for n, t in tensors.items()}
    _refuse(check_tensors(manifest, table, label))
    _refuse(check_finite(((n, DTYPE_CODES[t.dtype], tensor_bytes(t)) for n, t in tensors.items()), label))
