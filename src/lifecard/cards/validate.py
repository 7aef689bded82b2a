"""Everything a `.card` file must satisfy before any of its tensors reaches a model.

Reading runs the checks in this order, each on what the one before has proven:

  1. the file       size limits, a safetensors header that parses, the lifecard keys, the format version
  2. the manifest   JSON, the schema (schema.json), then the rules a schema cannot say
  3. the tensors    names, A/B pairs, dtypes and shapes against the manifest, byte ranges
  4. the values     finite everywhere, then the content digest

Every refusal is a `CardError` whose message is one sentence naming the card, the field and the
fix; a stage collects all of its problems (`CardError.problems`) before refusing. The rules are
written out in docs/card-format.md; this module is their reference implementation.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import torch

FORMAT_KEY = "lifecard.format"
MANIFEST_KEY = "lifecard.manifest"
FORMAT_VERSION = "1"

MAX_FILE_BYTES = (
    512 * 2**20
)  # a whole card; rank-64 LoRA on every projection of an 8B model is ~340 MiB in bf16
MAX_HEADER_BYTES = 2**20  # the safetensors JSON header, manifest included
MAX_TENSORS = 16384  # 1024 layers × (7 A/B pairs + 1 steer) fits

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# safetensors dtype code -> torch dtype; nothing else may be stored in a card
DTYPES: dict[str, torch.dtype] = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
DTYPE_CODES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}
# the exponent bits of each float format: all ones means Inf or NaN
_NONFINITE_MASK = {"F32": (np.uint32, 0x7F800000), "F16": (np.uint16, 0x7C00), "BF16": (np.uint16, 0x7F80)}

_LAYER = r"(0|[1-9][0-9]{0,3})"  # decimal without leading zeros, so every layer has exactly one name
TENSOR_NAME = re.compile(rf"^(?:lora\.{_LAYER}\.({'|'.join(PROJECTIONS)})\.([AB])|steer\.{_LAYER})$")


class CardError(ValueError):
    """A card lifecard refuses. str(e) is one sentence naming the card, the field and the fix;
    `problems` holds every problem found at the stage that refused (the first one is the message)."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        message = self.problems[0]
        if len(self.problems) > 1:
            more = len(self.problems) - 1
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        super().__init__(message)


@dataclass(frozen=True)
class TensorEntry:
    """One row of the safetensors header table; `begin`/`end` are absolute offsets in the file."""

    name: str
    dtype: str  # safetensors code: F32, F16, BF16 (others are refused)
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class CardHeader:
    manifest: dict[str, Any]
    entries: dict[str, TensorEntry]  # in header order
    data_start: int  # absolute offset of the first tensor byte
    file_bytes: int


# ---------------------------------------------------------------- 1. the file


def _strict_json(text: str | bytes) -> Any:
    """json.loads that refuses duplicate keys, NaN/Infinity and numbers that overflow to infinity."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k, v in items:
            if k in d:
                raise ValueError(f"the key {k!r} appears twice")
            d[k] = v
        return d

    def finite(s: str) -> float:
        x = float(s)
        if not math.isfinite(x):
            raise ValueError(f"the number {s} is not finite")
        return x

    def constant(s: str) -> Any:
        raise ValueError(f"{s} is not JSON")

    return json.loads(text, object_pairs_hook=pairs, parse_float=finite, parse_constant=constant)


def parse_header(blob: bytes | mmap.mmap, file_bytes: int, label: str) -> CardHeader:
    """Parse and check the safetensors framing, the lifecard keys and the tensor table's byte ranges.

    `blob` is at least the first 8 + header-length bytes of the file (the whole mapped file is fine).
    Raises CardError on the first problem: nothing past a broken frame can be trusted.
    """
    card = f"card {label}"
    if file_bytes == 0:
        raise CardError(f"{card} is empty (0 bytes): it is not a card file; copy or forge it again")
    if file_bytes > MAX_FILE_BYTES:
        raise CardError(
            f"{card} is {file_bytes} bytes, over the limit of {MAX_FILE_BYTES} bytes for a card: "
            "forge it with a lower rank or fewer layers"
        )
    if file_bytes < 8:
        raise CardError(f"{card} is {file_bytes} bytes, too short to be a safetensors file: copy it again")
    n = int.from_bytes(bytes(blob[:8]), "little")
    if n > file_bytes - 8:
        raise CardError(
            f"{card} is not a safetensors file, or is cut short (its first 8 bytes announce a {n}-byte "
            f"header in a {file_bytes}-byte file): copy it again"
        )
    if n > MAX_HEADER_BYTES:
        raise CardError(
            f"{card} has a {n}-byte header, over the limit of {MAX_HEADER_BYTES} bytes: shorten the manifest "
            "(persona, character_book, eval) and write the card again"
        )
    try:
        header = _strict_json(bytes(blob[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CardError(
            f"{card} is not a safetensors file (its header is not JSON: {e}): copy it again"
        ) from e
    if not isinstance(header, dict):
        raise CardError(f"{card} is not a safetensors file (its header is not a JSON object): copy it again")

    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or FORMAT_KEY not in meta:
        raise CardError(
            f"{card} is a safetensors file without __metadata__[{FORMAT_KEY!r}]: it is not a life card; "
            "import it (e.g. a PEFT adapter) with lifecard's importers instead"
        )
    version = meta[FORMAT_KEY]
    if version != FORMAT_VERSION:
        raise CardError(
            f"{card} is card format {version!r}, this lifecard reads format {FORMAT_VERSION!r}: "
            "upgrade lifecard, or export the card as format 1"
        )
    text = meta.get(MANIFEST_KEY)
    if not isinstance(text, str):
        raise CardError(
            f"{card} has no __metadata__[{MANIFEST_KEY!r}] string: the file is damaged; forge the card again"
        )
    try:
        manifest = _strict_json(text)
    except ValueError as e:
        raise CardError(
            f"{card} has a manifest ({MANIFEST_KEY}) that is not valid JSON ({e}): "
            "fix it or forge the card again"
        ) from e
    if not isinstance(manifest, dict):
        raise CardError(
            f"{card} has a manifest that is a JSON {type(manifest).__name__}, not an object: "
            "forge the card again"
        )

    if len(header) > MAX_TENSORS:
        raise CardError(
            f"{card} holds {len(header)} tensors, over the limit of {MAX_TENSORS}: it is not a format-1 card"
        )
    data_start = 8 + n
    entries: dict[str, TensorEntry] = {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            ok = (
                isinstance(dtype, str)
                and isinstance(shape, list)
                and all(type(d) is int and d >= 0 for d in shape)
                and type(begin) is int
                and type(end) is int
                and 0 <= begin <= end
            )
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise CardError(
                f"{card} is not a valid safetensors file (the header entry of tensor {name!r} is malformed): "
                "copy it again"
            )
        entries[name] = TensorEntry(name, dtype, tuple(shape), data_start + begin, data_start + end)

    # the data region must be covered exactly, in order, without gaps or overlaps (as safetensors requires)
    pos = data_start
    for entry in sorted(entries.values(), key=lambda x: (x.begin, x.end)):
        if entry.begin != pos:
            raise CardError(
                f"{card} is not a valid safetensors file (tensor {entry.name} starts at byte {entry.begin}, "
                f"expected {pos}): copy it again"
            )
        pos = entry.end
    if pos > file_bytes:
        raise CardError(
            f"{card} is cut short: its tensors need {pos} bytes, the file has {file_bytes}: copy it again"
        )
    if pos < file_bytes:
        raise CardError(
            f"{card} has {file_bytes - pos} stray bytes after its last tensor: the file is damaged; "
            "copy it again"
        )
    return CardHeader(manifest, entries, data_start, file_bytes)


# ---------------------------------------------------------------- 2. the manifest


@cache
def schema() -> dict[str, Any]:
    """The manifest's JSON Schema (draft 2020-12), shipped as lifecard/cards/schema.json."""
    return json.loads(resources.files("lifecard.cards").joinpath("schema.json").read_text("utf-8"))


@cache
def _validator() -> Any:
    import jsonschema

    base = jsonschema.Draft202012Validator
    # JSON Schema counts 1.0 as an integer; a card must not (layer 1.0 would name no tensor)
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool)
    )
    return jsonschema.validators.extend(base, type_checker=checker)(schema())


def json_path(parts: Iterable[str | int]) -> str:
    """['modules', 0, 'rank'] -> 'modules[0].rank'."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(the manifest itself)"


_SHA256_WORDS = "a sha256 digest (64 lowercase hex digits)"
_PATTERN_WORDS = {  # the schema's patterns in words, by field name
    "id": "a slug (1-64 of a-z, 0-9, '-', '_', not starting with '-' or '_')",
    "created": "an ISO 8601 date or date-time (e.g. 2025-01-02T03:04:05Z)",
    "family": "a family name (lowercase letters, digits, '_')",
    "fingerprint": _SHA256_WORDS,
    "content_sha256": _SHA256_WORDS,
    "data_sha256": _SHA256_WORDS,
    "public_key": "an ed25519 public key (64 lowercase hex digits)",
    "value": "an ed25519 signature (128 lowercase hex digits)",
}


def _describe(error: Any) -> str:
    """A schema error as 'field what-is-wrong'."""
    path = json_path(error.absolute_path)
    prefix = "" if not error.absolute_path else path + "."
    kind, inst, arg = error.validator, error.instance, error.validator_value
    if kind == "required":
        missing = [k for k in arg if isinstance(inst, dict) and k not in inst]
        return f"{prefix}{missing[0] if missing else arg} is missing"
    if kind == "additionalProperties" and isinstance(inst, dict):
        known = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        extra = [k for k in inst if k not in known and not any(re.search(p, k) for p in patterns)]
        return f"{prefix}{extra[0] if extra else '?'} is not a field of format 1"
    if kind == "type":
        want = arg if isinstance(arg, str) else " or ".join(arg)
        return f"{path} must be of type {want}, not {json.dumps(inst, ensure_ascii=False)[:60]}"
    if kind in ("enum", "const"):
        choices = arg if kind == "enum" else [arg]
        return f"{path} is {json.dumps(inst)[:60]}, it must be one of {', '.join(map(str, choices))}"
    if kind == "pattern":
        field = error.absolute_path[-1] if error.absolute_path else ""
        what = _PATTERN_WORDS.get(str(field), f"a string matching {arg}")
        return f"{path} is {json.dumps(inst, ensure_ascii=False)[:60]}, not {what}"
    return f"{path}: {error.message}"


def check_manifest(manifest: Mapping[str, Any], label: str) -> list[str]:
    """The manifest's problems (empty when it is a valid format-1 manifest): first the schema, then
    the rules across fields that the schema cannot express. `content_sha256` is not compared here."""
    import jsonschema

    card = f"card {label}"
    fix = "fix it or forge the card again"
    try:
        canonical_manifest(manifest)
    except UnicodeEncodeError:
        return [f"{card} has a manifest with a string that is not valid Unicode (a lone surrogate): {fix}"]
    except (ValueError, TypeError) as e:  # NaN/Infinity or a non-JSON value, from a manifest built in Python
        return [f"{card} has a manifest that is not plain JSON ({e}): {fix}"]
    errors = list(_validator().iter_errors(manifest))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        errors.sort(key=lambda e: e is not best)  # the most relevant first, the rest in document order
        return [f"{card} has a manifest that does not fit format 1: {_describe(e)}: {fix}" for e in errors]

    problems: list[str] = []
    try:
        datetime.fromisoformat(manifest["created"])
    except ValueError:
        problems.append(f"{card} has manifest field created {manifest['created']!r}, not a real date: {fix}")

    base = manifest["base"]
    hidden, layers, proj = base["hidden_size"], base["num_layers"], base["projections"]
    # the residual stream is the input of q/k/v/gate/up and the output of o/down
    for p, side, idx in [(p, "in", 1) for p in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")] + [
        (p, "out", 0) for p in ("o_proj", "down_proj")
    ]:
        if proj[p][idx] != hidden:
            problems.append(
                f"{card} has manifest field base.projections.{p} = {proj[p]}, whose {side} size is not "
                f"base.hidden_size {hidden}: {fix}"
            )

    kinds = [m["kind"] for m in manifest["modules"]]
    for kind in ("lora", "steer"):
        if kinds.count(kind) > 1:
            problems.append(
                f"{card} lists {kinds.count(kind)} {kind} modules in its manifest, format 1 holds at most "
                "one of each kind: merge them into one module"
            )
    for i, m in enumerate(manifest["modules"]):
        too_deep = [layer for layer in m["layers"] if layer >= layers]
        if too_deep:
            problems.append(
                f"{card} has manifest field modules[{i}].layers with layer {too_deep[0]}, but "
                f"base.num_layers is {layers}: {fix}"
            )

    s = manifest["strength"]
    if not s["min"] <= s["default"] <= s["max"]:
        problems.append(
            f"{card} has strength.default {s['default']} outside [strength.min {s['min']}, strength.max "
            f"{s['max']}]: set a default within the range"
        )
    return problems


# ---------------------------------------------------------------- 3. the tensors


def expected_tensors(manifest: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], int]]:
    """Every tensor a (schema-valid) manifest calls for: name -> (shape, index of its module)."""
    base = manifest["base"]
    out: dict[str, tuple[tuple[int, ...], int]] = {}
    for i, m in enumerate(manifest["modules"]):
        for layer in m["layers"]:
            if m["kind"] == "steer":
                out[f"steer.{layer}"] = ((base["hidden_size"],), i)
                continue
            for p in m["targets"]:
                n_out, n_in = base["projections"][p]
                out[f"lora.{layer}.{p}.A"] = ((m["rank"], n_in), i)  # A: [r, in]
                out[f"lora.{layer}.{p}.B"] = ((n_out, m["rank"]), i)  # B: [out, r]
    return out


def check_tensors(
    manifest: Mapping[str, Any], table: Mapping[str, tuple[str, tuple[int, ...]]], label: str
) -> list[str]:
    """Problems with the tensor table {name: (dtype code, shape)} against a schema-valid manifest."""
    card = f"card {label}"
    expected = expected_tensors(manifest)
    problems: list[str] = []
    for name, (dtype, shape) in table.items():
        if name not in expected:
            if TENSOR_NAME.match(name) is None:
                problems.append(
                    f"{card} holds a tensor named {name!r}, which format 1 does not know (only "
                    "lora.{layer}.{proj}.A/B and steer.{layer}): remove it"
                )
            else:
                problems.append(
                    f"{card} holds tensor {name}, which no module of its manifest lists (see "
                    "modules[].layers and .targets): list it in the manifest or remove it"
                )
            continue
        if dtype not in DTYPES:
            problems.append(
                f"{card} holds tensor {name} as {dtype}, a card stores only F32, F16 or BF16: "
                "convert it (bfloat16 is the usual choice)"
            )
        want, module = expected[name]
        if tuple(shape) != want:
            field = f"modules[{module}].rank, modules[{module}].targets or base.projections"
            if name.startswith("steer."):
                field = "base.hidden_size"
            problems.append(
                f"{card} holds tensor {name} of shape {list(shape)}, its manifest ({field}) calls for "
                f"{list(want)}: forge the card again"
            )
    reported: set[str] = set()
    for name in expected:
        if name in table or name in reported:
            continue
        module = expected[name][1]
        if name.startswith("lora."):
            stem = name[:-1]
            a, b = stem + "A", stem + "B"
            reported.update((a, b))
            if a in table or b in table:
                have, lack = (a, b) if a in table else (b, a)
                problems.append(
                    f"{card} holds tensor {have} without its partner {lack}: a LoRA pair needs both A and B; "
                    "forge the card again"
                )
                continue
            _, layer, proj, _ = name.split(".")
            problems.append(
                f"{card} lists layer {layer} and target {proj} in modules[{module}] but holds no {stem}A/B: "
                "remove them from the manifest or forge the card again"
            )
        else:
            problems.append(
                f"{card} lists layer {name.split('.')[1]} in modules[{module}].layers but holds no tensor "
                f"{name}: remove it from the manifest or forge the card again"
            )
    return problems


def check_extents(entries: Iterable[TensorEntry], label: str) -> list[str]:
    """Problems with tensors whose byte range does not match their dtype and shape (known dtypes only)."""
    problems = []
    for e in entries:
        want = math.prod(e.shape) * DTYPES[e.dtype].itemsize
        if e.end - e.begin != want:
            problems.append(
                f"card {label} holds tensor {e.name} with {e.end - e.begin} bytes of data, its dtype and "
                f"shape need {want}: the file is damaged; copy it again"
            )
    return problems


# ---------------------------------------------------------------- 4. the values


def count_nonfinite(dtype: str, data: Any) -> int:
    """How many Inf/NaN values the little-endian buffer `data` of F32/F16/BF16 elements holds, by their
    exponent bits (a pure integer test: no float conversion, so fast and exact)."""
    itype, mask = _NONFINITE_MASK[dtype]
    bits = np.frombuffer(data, dtype=np.dtype(itype).newbyteorder("<"))
    return int(np.count_nonzero((bits & mask) == mask))


def check_finite(chunks: Iterable[tuple[str, str, Any]], label: str) -> list[str]:
    """Problems with tensors holding NaN or Inf. chunks: (name, dtype code, raw bytes)."""
    problems = []
    for name, dtype, data in chunks:
        k = count_nonfinite(dtype, data)
        if k:
            problems.append(
                f"card {label} holds {k} NaN or infinite value{'s' if k > 1 else ''} in tensor {name}: "
                "the forge diverged; forge the card again"
            )
    return problems


def canonical_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The manifest bytes the digest covers: without content_sha256 and signature, keys sorted,
    no whitespace, UTF-8 (docs/card-format.md, "The content digest")."""
    body = {k: v for k, v in manifest.items() if k not in ("content_sha256", "signature")}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_digest(
    manifest: Mapping[str, Any], tensors: Iterable[tuple[str, str, tuple[int, ...], Any]]
) -> str:
    """sha256 hex of: canonical manifest, "\\n", then per tensor in name order
    "{name}\\n{dtype code}\\n{shape as [d0,d1]}\\n" and its raw little-endian bytes.

    tensors: (name, dtype code, shape, buffer of its raw bytes)."""
    h = hashlib.sha256(canonical_manifest(manifest))
    h.update(b"\n")
    for name, dtype, shape, data in sorted(tensors, key=lambda t: t[0]):
        h.update(f"{name}\n{dtype}\n[{','.join(map(str, shape))}]\n".encode("ascii"))
        h.update(data)
    return h.hexdigest()


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of a CPU tensor, without copying when it is contiguous."""
    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().data
