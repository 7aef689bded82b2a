"""Character cards: round trips through every container, and refusals of malformed or hostile files.

Test files are built here byte by byte (struct + zlib + zipfile), so each one is exactly as broken
as the test means it to be.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from lifecard.cards.charcard import (
    MAX_FILE_BYTES,
    MAX_TEXT_CHUNK_BYTES,
    PNG_SIGNATURE,
    V3_REQUIRED,
    CharacterCard,
    CharacterCardError,
    read_character_card,
    to_character_card_v3,
    write_png_card,
)

DATA: dict[str, Any] = {
    "name": "Ada",
    "description": "A mathematician.",
    "personality": "curious",
    "scenario": "London, 1843",
    "first_mes": "Hello, {{user}}.",
    "mes_example": "<START>\n{{char}}: Numbers are poetry.",
    "tags": ["history", "math"],
    "creator": "someone",
    "character_version": "1.0",
    "alternate_greetings": ["Good day."],
    "extensions": {"talkativeness": "0.5"},
    "character_book": {
        "name": "notes",
        "entries": [{"keys": ["engine"], "content": "The Analytical Engine."}],
    },
}
V3_DATA = {**DATA, "nickname": "Countess", "group_only_greetings": [], "creation_date": 1700000000}


def v2(data: dict[str, Any] = DATA) -> dict[str, Any]:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": data}


def v3(data: dict[str, Any] = V3_DATA) -> dict[str, Any]:
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}


def b64(obj: Any) -> bytes:
    return base64.b64encode(json.dumps(obj).encode())


# ---------------------------------------------------------------- building PNGs and zips


def chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def text(keyword: str, value: bytes) -> bytes:
    return chunk(b"tEXt", keyword.encode() + b"\0" + value)


def ztext(keyword: str, value: bytes) -> bytes:
    return chunk(b"zTXt", keyword.encode() + b"\0\0" + zlib.compress(value))


def itext(keyword: str, value: bytes, compressed: bool) -> bytes:
    payload = zlib.compress(value) if compressed else value
    return chunk(b"iTXt", keyword.encode() + b"\0" + bytes([compressed, 0]) + b"en\0\0" + payload)


def png(*, before_idat: tuple[bytes, ...] = (), after_idat: tuple[bytes, ...] = ()) -> bytes:
    """A 1×1 RGB PNG with extra chunks placed around its IDAT."""
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(b"\0\xff\x00\x00"))
    return PNG_SIGNATURE + ihdr + b"".join(before_idat) + idat + b"".join(after_idat) + chunk(b"IEND", b"")


def png_chunk_types(data: bytes) -> list[bytes]:
    types, pos = [], len(PNG_SIGNATURE)
    while pos < len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        types.append(ctype)
        pos += 12 + length
    return types


def png_text(data: bytes, keyword: str) -> dict[str, Any]:
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        if ctype == b"tEXt" and body.startswith(keyword.encode() + b"\0"):
            return json.loads(base64.b64decode(body.split(b"\0", 1)[1]))
        pos += 12 + length
    raise AssertionError(f"no {keyword} chunk")


def charx(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buf.getvalue()


def patch_declared_size(
    zip_bytes: bytes, size: int, compressed: int | None = None, every: bool = False
) -> bytes:
    """Overwrite the declared uncompressed (and maybe compressed) size of the first entry, or of every
    entry, in both its local header and its central directory record."""
    data = bytearray(zip_bytes)
    for signature, offset in ((b"PK\x03\x04", 18), (b"PK\x01\x02", 20)):
        pos = data.find(signature)
        while pos >= 0:
            struct.pack_into("<I", data, pos + offset + 4, size)
            if compressed is not None:
                struct.pack_into("<I", data, pos + offset, compressed)
            pos = data.find(signature, pos + 1) if every else -1
    return bytes(data)


def read(data: bytes, filename: str = "card.bin") -> CharacterCard:
    return read_character_card(data, filename)


# ---------------------------------------------------------------- round trips


def test_v2_json():
    card = read(json.dumps(v2()).encode(), "ada.json")
    assert card == CharacterCard(persona=DATA, spec="chara_card_v2", avatar=None, source="ada.json")


def test_v3_json():
    card = read(json.dumps(v3()).encode())
    assert (card.spec, card.persona) == ("chara_card_v3", V3_DATA)


def test_v1_flat_json_and_old_spellings():
    flat = {"name": "Ada", "description": "d", "personality": "p", "scenario": "s", "first_mes": "hi"}
    assert read(json.dumps(flat).encode()).persona == flat
    assert read(json.dumps(flat).encode()).spec == "v1"
    old = {"char_name": "Bob", "char_persona": "grumpy", "char_greeting": "What?", "example_dialogue": "x"}
    persona = read(json.dumps(old).encode()).persona
    assert persona == {"name": "Bob", "personality": "grumpy", "first_mes": "What?", "mes_example": "x"}


def test_unknown_keys_dropped_nulls_skipped_numbers_to_text():
    data = {
        **DATA,
        "name": "  Ada  ",
        "character_version": 2,
        "tags": ["a", 3],
        "alternate_greetings": "Hi.",
        "character_book": None,
        "creation_date": 1700000000.5,
        "talkativeness": "0.5",  # a V1-era field that is not a persona field
    }
    persona = read(json.dumps(v2(data)).encode()).persona
    assert persona["name"] == "Ada"
    assert persona["character_version"] == "2"
    assert persona["tags"] == ["a", "3"]
    assert persona["alternate_greetings"] == ["Hi."]
    assert persona["creation_date"] == 1700000000
    assert "character_book" not in persona and "talkativeness" not in persona


def test_detected_by_content_not_extension():
    card = read(png(before_idat=(text("chara", b64(v2())),)), "looks_like.json")
    assert card.persona == DATA


@pytest.mark.parametrize("where", ["before_idat", "after_idat"])
def test_png_text_chunk_anywhere(where: str):
    data = png(**{where: (text("chara", b64(v2())),)})
    card = read(data, "ada.png")
    assert (card.spec, card.persona, card.avatar) == ("chara_card_v2", DATA, data)


def test_png_prefers_ccv3():
    data = png(before_idat=(text("chara", b64(v2({"name": "Old"}))),), after_idat=(text("ccv3", b64(v3())),))
    card = read(data)
    assert (card.spec, card.persona) == ("chara_card_v3", V3_DATA)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: ztext("chara", p),
        lambda p: itext("chara", p, compressed=False),
        lambda p: itext("chara", p, compressed=True),
    ],
    ids=["zTXt", "iTXt", "iTXt-compressed"],
)
def test_png_compressed_and_international_text(make: Callable[[bytes], bytes]):
    assert read(png(after_idat=(make(b64(v2())),))).persona == DATA


def test_charx_with_main_icon():
    icon = png()
    data = {
        **V3_DATA,
        "assets": [{"type": "icon", "name": "main", "uri": "embeded://assets/icon/main.png", "ext": "png"}],
    }
    blob = charx(
        {"card.json": json.dumps(v3(data)).encode(), "assets/icon/main.png": icon, "assets/other/x.bin": b"x"}
    )
    card = read(blob, "ada.charx")
    assert (card.spec, card.persona, card.avatar) == ("chara_card_v3", data, icon)


def test_charx_without_icon():
    assert read(charx({"card.json": json.dumps(v3()).encode()})).avatar is None


def test_reading_writes_nothing(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    blob = charx({"card.json": json.dumps(v3()).encode(), "../evil": b"x", "assets/a.png": png()})
    with pytest.raises(CharacterCardError):
        read(blob)
    read(charx({"card.json": json.dumps(v3()).encode(), "assets/a.png": png()}))
    assert list(tmp_path.iterdir()) == []


def test_to_character_card_v3_fills_required_fields():
    card = to_character_card_v3({"name": "Ada", "tags": ["x"]})
    assert (card["spec"], card["spec_version"]) == ("chara_card_v3", "3.0")
    assert card["data"] == {**V3_REQUIRED, "name": "Ada", "tags": ["x"]}
    card["data"]["extensions"]["k"] = 1  # defaults are fresh copies, not shared
    assert to_character_card_v3({"name": "Ada"})["data"]["extensions"] == {}


def test_write_png_card_round_trip_without_avatar():
    data = write_png_card(V3_DATA)
    assert data.startswith(PNG_SIGNATURE)
    assert struct.unpack_from(">II", data, 16) == (64, 64)  # IHDR width, height
    card = read(data, "export.png")
    assert card.spec == "chara_card_v3"
    assert card.persona == {**V3_REQUIRED, **V3_DATA}
    legacy = png_text(data, "chara")
    assert legacy["spec"] == "chara_card_v2" and legacy["name"] == "Ada"
    assert "nickname" not in legacy["data"]  # V3-only fields stay out of the V2 copy


def test_write_png_card_replaces_existing_card_chunks():
    avatar = png(before_idat=(text("chara", b64(v2({"name": "Old"}))), text("Software", b"x")))
    data = write_png_card({"name": "New"}, avatar)
    types = png_chunk_types(data)
    assert types == [b"IHDR", b"tEXt", b"IDAT", b"tEXt", b"tEXt", b"IEND"]  # Software kept, chara replaced
    assert read(data).persona["name"] == "New"
    assert png_text(data, "chara")["data"]["name"] == "New"


def test_write_refuses_bad_persona_and_avatar():
    with pytest.raises(CharacterCardError, match="no name"):
        write_png_card({"description": "nameless"})
    with pytest.raises(CharacterCardError, match=r"avatar: .*signature"):
        write_png_card({"name": "Ada"}, b"\x89PNG not really")


# ---------------------------------------------------------------- refusals


def _good_png_cut() -> bytes:
    return png(after_idat=(text("chara", b64(v2())),))[:-20]


def _bad_crc() -> bytes:
    data = bytearray(png(after_idat=(text("chara", b64(v2())),)))
    data[42] ^= 0xFF  # inside IDAT's data
    return bytes(data)


def _nested(depth: int) -> bytes:
    return b'{"spec":"chara_card_v2","data":{"name":"x","extensions":' + b"[" * depth + b"]" * depth + b"}}"


def _many_entries() -> bytes:
    return charx({"card.json": json.dumps(v3()).encode(), **{f"assets/{i}.txt": b"" for i in range(1000)}})


def _lying_zip() -> bytes:
    # declares 100 bytes, inflates to 20 MiB of zeros: the read must stop, not trust the header
    return patch_declared_size(charx({"card.json": b"\0" * (20 * 2**20)}), 100)


def _declared_huge_card() -> bytes:
    return patch_declared_size(charx({"card.json": json.dumps(v3()).encode()}), 5 * 2**20, 5 * 2**20)


def _declared_huge_total() -> bytes:
    files = {"card.json": b"{}", **{f"assets/{i}.png": b"x" for i in range(11)}}
    return patch_declared_size(charx(files), 3 * 2**20, 3 * 2**20, every=True)


def _high_ratio() -> bytes:
    return charx({"assets/zeros.bin": b"\0" * (2 * 2**20), "card.json": json.dumps(v3()).encode()})


def _encrypted() -> bytes:
    data = bytearray(charx({"card.json": json.dumps(v3()).encode()}))
    struct.pack_into("<H", data, data.find(b"PK\x01\x02") + 8, 1)  # general purpose flag bit 0
    return bytes(data)


def _duplicate_card_json() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("card.json", json.dumps(v3()).encode())
        z.writestr("card.json", json.dumps(v3({"name": "Evil"})).encode())
    return buf.getvalue()


def _card_with(**fields: Any) -> bytes:
    return json.dumps(v2({**DATA, **fields})).encode()


HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "empty"),
    "unknown format": (lambda: b"GIF89a\x01\x00", "not a character card"),
    "too large": (lambda: b" " * (MAX_FILE_BYTES + 1), "over the 16 MiB limit"),
    "bad json": (lambda: b'{"spec": "chara_card_v2", "data": {', "not valid JSON"),
    "json not object": (lambda: b'["Ada"]', "JSON that is an array, not an object"),
    "not utf-8": (lambda: b'{"name": "\xff"}', "not UTF-8"),
    "nan": (lambda: b'{"name": "Ada", "extensions": {"x": NaN}}', "NaN is not JSON"),
    "deep nesting": (lambda: _nested(100_000), "nested too deeply"),
    "wrong spec": (
        lambda: json.dumps({"spec": "chara_card_v9", "data": DATA}).encode(),
        "spec is 'chara_card_v9'",
    ),
    "v2 without data": (
        lambda: json.dumps({"spec": "chara_card_v2", "name": "Ada"}).encode(),
        "no 'data' object",
    ),
    "name missing": (lambda: json.dumps(v2({"description": "d"})).encode(), "no name"),
    "name empty": (lambda: _card_with(name="   "), "no name"),
    "wrong types": (
        lambda: _card_with(tags=5, description={"a": 1}, name=["Ada"]),
        "'name' should be a string but is an array, 'description' should be a string but is an object, "
        "'tags' should be a list of strings but is a number",
    ),
    "huge lorebook": (
        lambda: _card_with(character_book={"entries": [{"content": "x" * (3 * 2**20)}]}),
        "lorebook",
    ),
    "png bad signature": (lambda: b"\x89PNG\r\n\x1a\x00" + png()[8:], "signature is wrong"),
    "png truncated": (_good_png_cut, "truncated"),
    "png bad crc": (_bad_crc, "chunk 1 (IDAT) fails its CRC check"),
    "png first chunk not IHDR": (lambda: PNG_SIGNATURE + png()[33:], "not IHDR"),
    "png no card chunk": (lambda: png(before_idat=(text("Comment", b"hi"),)), "no 'chara' or 'ccv3'"),
    "png bad base64": (lambda: png(after_idat=(text("chara", b"eyJuYW1lIjoi!!"),)), "not valid base64"),
    "png bad json": (
        lambda: png(after_idat=(text("ccv3", base64.b64encode(b"{name: Ada}")),)),
        "not valid JSON",
    ),
    "png huge chunk": (
        lambda: png(after_idat=(text("chara", b"A" * MAX_TEXT_CHUNK_BYTES),)),
        "tEXt chunk is 4,194,310 bytes, over the 4 MiB limit",
    ),
    "ztxt bomb": (lambda: png(after_idat=(ztext("chara", b"A" * (64 * 2**20)),)), "decompression bomb"),
    "ztxt corrupt": (
        lambda: png(after_idat=(chunk(b"zTXt", b"chara\0\0not zlib"),)),
        "corrupt compressed data",
    ),
    "ztxt truncated": (
        lambda: png(after_idat=(chunk(b"zTXt", b"chara\0\0" + zlib.compress(b64(v2()))[:-8]),)),
        "truncated compressed stream",
    ),
    "zip missing card.json": (lambda: charx({"character.json": json.dumps(v3()).encode()}), "no card.json"),
    "zip climbs out": (
        lambda: charx({"card.json": b"{}", "../evil": b"x"}),
        "'../evil', a path that could climb out",
    ),
    "zip climbs out deeper": (lambda: charx({"card.json": b"{}", "assets/../../evil": b"x"}), "climb out"),
    "zip absolute path": (lambda: charx({"card.json": b"{}", "/etc/passwd": b"x"}), "'/etc/passwd'"),
    "zip backslash": (lambda: charx({"card.json": b"{}", "..\\evil": b"x"}), "climb out"),
    "zip drive letter": (lambda: charx({"card.json": b"{}", "C:/evil": b"x"}), "'C:/evil'"),
    "zip too many entries": (_many_entries, "more than 1000 files"),
    "zip bomb lying header": (_lying_zip, "zip bomb"),
    "zip card.json too large": (_declared_huge_card, "'card.json' is 5,242,880 bytes, over the 4 MiB limit"),
    "zip total too large": (_declared_huge_total, "unpacks to 37,748,736 bytes, over the 32 MiB limit"),
    "zip ratio": (_high_ratio, "fold when unpacked (a zip bomb?)"),
    "zip encrypted": (_encrypted, "encrypted"),
    "zip bzip2": (
        lambda: charx({"card.json": json.dumps(v3()).encode()}, zipfile.ZIP_BZIP2),
        "compression method 12",
    ),
    "zip duplicate names": (_duplicate_card_json, "two files named 'card.json'"),
    "zip damaged": (lambda: b"PK\x03\x04" + b"\0" * 100, "not a readable zip"),
    "charx bad json": (lambda: charx({"card.json": b"{oops"}), "card.json is not valid JSON"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_refusals_name_the_file_and_the_problem(case: str):
    make, expected = HOSTILE[case]
    with pytest.raises(CharacterCardError) as caught:
        read_character_card(make(), "upload.bin")
    message = str(caught.value)
    assert message.startswith("upload.bin: ") and message.endswith(".")
    assert expected in message
    assert "; " in message  # the problem, then the fix


def test_bomb_is_refused_before_it_is_inflated(monkeypatch: pytest.MonkeyPatch):
    """The zTXt bomb claims 64 MiB; decompression must stop at the limit, not produce it all."""
    produced: list[int] = []
    real = zlib.decompressobj

    class Spy:
        def __init__(self) -> None:
            self.inner = real()

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            out = self.inner.decompress(data, max_length)
            produced.append(len(out))
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    monkeypatch.setattr(zlib, "decompressobj", Spy)
    with pytest.raises(CharacterCardError, match="decompression bomb"):
        read(png(after_idat=(ztext("chara", b"A" * (64 * 2**20)),)))
    assert sum(produced) <= 4 * 2**20 + 1


def test_damaged_files_only_ever_raise_character_card_error():
    """Random byte damage to good cards of every container: read, or refuse with the one error type."""
    icon = png()
    charx_data = {**V3_DATA, "assets": [{"type": "icon", "name": "main", "uri": "embeded://a/icon.png"}]}
    seeds = [
        png(after_idat=(ztext("chara", b64(v2())),)),
        png(before_idat=(itext("ccv3", b64(v3()), compressed=True),)),
        charx({"card.json": json.dumps(v3(charx_data)).encode(), "a/icon.png": icon}),
        charx({"card.json": json.dumps(v3(charx_data)).encode(), "a/icon.png": icon}, zipfile.ZIP_STORED),
        json.dumps(v2()).encode(),
        write_png_card(V3_DATA),
    ]
    rng = random.Random(0)
    for _ in range(600):
        data = bytearray(rng.choice(seeds))
        at = rng.randrange(len(data))
        if rng.random() < 0.7:
            data[at] = rng.randrange(256)
        else:
            del data[at : at + rng.randint(1, 40)]
        with contextlib.suppress(CharacterCardError):
            read(bytes(data))
