"""Text <-> token ids, the chat template, and streaming detokenization.

A thin layer over a `tokenizers.Tokenizer` (the Rust fast tokenizer HF uses), built from the
vocabulary inside a GGUF file or loaded from an HF folder's tokenizer.json. BOS is added here, never
by the fast tokenizer's post-processor, so one flag decides it for every source.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as Backend

from lifecard.atomic import write_atomic
from lifecard.model.gguf import TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED, ModelFileError

# The split regexes of llama.cpp's pre-tokenizer names, as in each model's own tokenizer.json
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLIT_PATTERNS = {"llama-bpe": _LLAMA3_SPLIT, "qwen2": _QWEN2_SPLIT}
_DIGIT_SPLITTING = ("smollm", "starcoder", "refact")
_PLAIN_BYTE_LEVEL = ("gpt2", "default")
SUPPORTED_PRE_TOKENIZERS = (*_DIGIT_SPLITTING, *_PLAIN_BYTE_LEVEL, *_SPLIT_PATTERNS)

_CONFIG_FILE = "tokenizer_config.json"


class Tokenizer:
    """Encode, decode and render chats for one model.

    bos_id: the id prepended when add_bos; eos_id: the model's own end token (the chat template's
    eos_token); eos_ids: every id that ends generation, eos_id included.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        bos_id: int | None,
        eos_id: int | None,
        eos_ids: Iterable[int] = (),
        add_bos: bool,
        chat_template: str | None,
    ) -> None:
        self.backend = backend
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.eos_ids = frozenset(eos_ids) | ({eos_id} if eos_id is not None else set())
        self.add_bos = add_bos
        self.chat_template = chat_template
        self._compiled: tuple[str, jinja2.Template] | None = None  # (source, template)

    # ---- building

    @classmethod
    def from_gguf(cls, material: dict[str, Any]) -> Tokenizer:
        """Rebuild the byte-level BPE tokenizer from the material `gguf.read_tokenizer_material` returns."""
        tokens, types = material["tokens"], material["token_types"]
        model = models.BPE(
            vocab={tok: i for i, tok in enumerate(tokens)},
            merges=[_merge_pair(m) for m in material["merges"]],
            # Llama 3 takes a pre-token that is already in the vocabulary as it is (its tokenizer.json
            # sets ignore_merges); the others always apply merges
            ignore_merges=material["pre"] == "llama-bpe",
        )
        backend = Backend(model)
        backend.pre_tokenizer = _gguf_pre_tokenizer(material["pre"])
        backend.decoder = decoders.ByteLevel()
        # control tokens (<|im_start|>) and user-defined ones must each encode to their single id;
        # only control tokens are dropped by decode(skip_special=True)
        backend.add_special_tokens(
            [
                AddedToken(t, special=True, normalized=False)
                for t, k in zip(tokens, types, strict=True)
                if k == TOKEN_TYPE_CONTROL
            ]
        )
        backend.add_tokens(
            [
                AddedToken(t, special=False, normalized=False)
                for t, k in zip(tokens, types, strict=True)
                if k == TOKEN_TYPE_USER_DEFINED
            ]
        )
        return cls(
            backend,
            bos_id=material["bos_id"],
            eos_id=material["eos_id"],
            eos_ids=material["eos_ids"],
            add_bos=material["add_bos"],
            chat_template=material["chat_template"],
        )

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        """Load from a folder with tokenizer.json: an HF model folder or one written by `save`.

        tokenizer_config.json gives bos/eos, add_bos_token and the chat template (or chat_template.jinja,
        as newer transformers save it); generation_config.json adds its eos ids.
        """
        directory = Path(directory)
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise ModelFileError(
                f"{directory} has no tokenizer.json: lifecard needs the fast-tokenizer file "
                "(transformers' tokenizer.save_pretrained writes it)"
            )
        backend = Backend.from_file(str(path))
        config = _read_json(directory / _CONFIG_FILE)
        generation = _read_json(directory / "generation_config.json")

        bos_token = _token_text(config.get("bos_token"))
        bos_id = backend.token_to_id(bos_token) if bos_token else generation.get("bos_token_id")
        eos_token = _token_text(config.get("eos_token"))
        generation_eos = _as_id_list(generation.get("eos_token_id"))
        eos_id = backend.token_to_id(eos_token) if eos_token else next(iter(generation_eos), None)
        eos_ids = {*config.get("eos_token_ids", []), *generation_eos}
        if "add_bos_token" in config:
            add_bos = bool(config["add_bos_token"])
        else:  # HF fast tokenizers without the key add BOS through their post-processor, if at all
            add_bos = bos_id is not None and backend.encode("a").ids[:1] == [bos_id]
        return cls(
            backend,
            bos_id=bos_id,
            eos_id=eos_id,
            eos_ids=eos_ids,
            add_bos=add_bos,
            chat_template=_chat_template(directory, config),
        )

    def save(self, directory: str | Path) -> None:
        """Write tokenizer.json and tokenizer_config.json (HF-compatible, so transformers can load it too)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "eos_token_ids": sorted(self.eos_ids),  # ours: HF's eos_token names only one
            "add_bos_token": self.add_bos,
            "chat_template": self.chat_template,
        }
        write_atomic(directory / "tokenizer.json", self.backend.to_str())
        write_atomic(directory / _CONFIG_FILE, json.dumps(config, ensure_ascii=False, indent=2))

    # ---- using

    @property
    def vocab_size(self) -> int:
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    @property
    def bos_token(self) -> str | None:
        return None if self.bos_id is None else self._token(self.bos_id)

    @property
    def eos_token(self) -> str | None:
        return None if self.eos_id is None else self._token(self.eos_id)

    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        """Token ids of `text`; special-token text such as <|im_start|> becomes its single id.

        add_bos None follows the model. BOS is not doubled when the text already starts with it (chat
        templates often write it themselves).
        """
        ids: list[int] = self.backend.encode(text, add_special_tokens=False).ids
        add = self.add_bos if add_bos is None else add_bos
        if add and self.bos_id is not None and ids[:1] != [self.bos_id]:
            ids.insert(0, self.bos_id)
        return ids

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        return str(self.backend.decode(list(ids), skip_special_tokens=skip_special))

    def apply_chat_template(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        """Render a conversation ([{"role": ..., "content": ...}]) the way transformers does."""
        if not self.chat_template:
            raise ModelFileError(
                "this model has no chat template: prompt it with plain text, or use an instruct model"
            )
        if self._compiled is None or self._compiled[0] != self.chat_template:
            self._compiled = (self.chat_template, _jinja_environment().from_string(self.chat_template))
        return self._compiled[1].render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
        )

    def encode_chat(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> list[int]:
        """Token ids of a rendered conversation; the template decides BOS, as in transformers."""
        return self.encode(self.apply_chat_template(messages, add_generation_prompt), add_bos=False)

    def _token(self, token_id: int) -> str:
        token = self.backend.id_to_token(token_id)
        if token is None:
            raise ModelFileError(f"token id {token_id} is outside this tokenizer's vocabulary")
        return str(token)


class StreamDecoder:
    """Turn generated ids into text piece by piece, never splitting a UTF-8 character.

    Byte-level tokens can end in the middle of a character; decoding then yields U+FFFD, so such
    text is held back until the next token completes it. Each push decodes a short window that starts
    one chunk back, so decoders that depend on context (SentencePiece's leading space) stay right.
    """

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip_special = skip_special
        self._ids: list[int] = []
        self._prefix = 0  # start of the window re-decoded for context
        self._read = 0  # ids before this index have been returned as text

    def push(self, token_id: int) -> str:
        """Add one id; return only the text it completes (often '', never half a character)."""
        self._ids.append(token_id)
        return self._advance(final=False)

    def flush(self) -> str:
        """The text still held back (an unfinished character comes out as U+FFFD)."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        decode = self._tokenizer.decode
        seen = decode(self._ids[self._prefix : self._read], self._skip_special)
        text = decode(self._ids[self._prefix :], self._skip_special)
        # a character is at most 4 bytes; a longer run ending in U+FFFD is invalid bytes, not a partial
        pending = len(self._ids) - self._read
        if len(text) <= len(seen) or (text.endswith("\ufffd") and pending < 4 and not final):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return text[len(seen) :]


def _gguf_pre_tokenizer(pre: str) -> pre_tokenizers.PreTokenizer:
    """The pre-tokenizer llama.cpp's `tokenizer.ggml.pre` name stands for."""
    if pre in _DIGIT_SPLITTING:
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    if pre in _PLAIN_BYTE_LEVEL:
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _SPLIT_PATTERNS:
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_SPLIT_PATTERNS[pre]), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    raise ModelFileError(
        f"the GGUF tokenizer uses the pre-tokenizer {pre!r}, which lifecard does not know "
        f"(it knows {', '.join(SUPPORTED_PRE_TOKENIZERS)}): use the model's Hugging Face folder with "
        "tokenizer.json"
    )


def _merge_pair(merge: str) -> tuple[str, str]:
    # byte-level tokens never contain a literal space (it is written Ġ), so the space separates the pair
    left, _, right = merge.partition(" ")
    return left, right


def _jinja_environment() -> ImmutableSandboxedEnvironment:
    """A sandbox configured as transformers renders chat templates (templates come from strangers)."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, **kwargs: Any) -> str:
    # jinja's own tojson escapes HTML characters and ASCII-encodes; templates expect plain JSON
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, **kwargs)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _chat_template(directory: Path, config: dict[str, Any]) -> str | None:
    jinja_file = directory / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template}
        return named.get("default")
    return template


def _token_text(token: Any) -> str | None:
    # tokenizer_config.json writes special tokens as a string or as an AddedToken dict
    if isinstance(token, dict):
        return token.get("content")
    return token if isinstance(token, str) else None


def _as_id_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list) else [int(value)]


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelFileError(
            f"{path} is not valid JSON ({e}): restore the file from the model's source"
        ) from e
    return data if isinstance(data, dict) else {}
