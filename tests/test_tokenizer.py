"""Tokenizer: rebuilt from GGUF material or loaded from a folder, chat templates, streaming decode."""

from __future__ import annotations

import json
from typing import Any

import jinja2
import pytest
from tokenizers import Tokenizer as Backend
from tokenizers import processors

from lifecard.model.files import default_model_path
from lifecard.model.gguf import ModelFileError, open_gguf, read_tokenizer_material
from lifecard.model.tokenizer import StreamDecoder, Tokenizer

TEXTS = [
    "the quick brown fox",
    "Numbers 12345 and 3.14159",
    "def f(x):\n    return x ** 2  # square\n\tpass",
    "你好，世界！今天天气很好。",
    "emoji 😀👍🏽 and naïve café",
    "  several   spaces\n\n\nand newlines ",
    "<|im_start|>user\nhi there<|im_end|>\n",
    "I'm sure you're right, we'll see",
]
MESSAGES = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 你好 means? 😀"},
]


def _material(bpe: Backend, **overrides: Any) -> dict[str, Any]:
    """What read_tokenizer_material returns for a GGUF file that carries `bpe`."""
    vocab = sorted(bpe.get_vocab().items(), key=lambda item: item[1])
    tokens = [t for t, _ in vocab]
    material = {
        "model": "gpt2",
        "pre": "smollm",
        "tokens": tokens,
        "token_types": [3 if t.startswith("<|") else 1 for t in tokens],
        "merges": [" ".join(m) for m in json.loads(bpe.to_str())["model"]["merges"]],
        "bos_id": 1,
        "eos_id": 2,
        "eos_ids": [0, 2],
        "add_bos": False,
        "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    }
    return material | overrides


@pytest.fixture
def tok(tiny_bpe: Backend) -> Tokenizer:
    return Tokenizer.from_gguf(_material(tiny_bpe))


def test_gguf_vocabulary_encodes_like_the_original_tokenizer(tok, tiny_bpe):
    for text in TEXTS:
        assert tok.encode(text) == tiny_bpe.encode(text).ids, text
        assert tok.decode(tok.encode(text), skip_special=False) == text


def test_control_tokens_are_single_ids_and_skipped_on_decode(tok):
    ids = tok.encode("<|im_start|>user\nhi<|im_end|>")
    assert ids[0] == 1 and ids[-1] == 2
    assert tok.decode(ids) == "user\nhi"
    assert tok.decode(ids, skip_special=False) == "<|im_start|>user\nhi<|im_end|>"


def test_user_defined_tokens_are_single_ids_kept_on_decode(tiny_bpe):
    material = _material(tiny_bpe)
    material["tokens"] = [*material["tokens"], "<think>"]
    material["token_types"] = [*material["token_types"], 4]
    tok = Tokenizer.from_gguf(material)
    think = len(material["tokens"]) - 1
    assert tok.encode("a<think>b")[1] == think
    assert tok.decode(tok.encode("a<think>b")) == "a<think>b"


def test_bos_is_added_once_when_asked(tiny_bpe):
    tok = Tokenizer.from_gguf(_material(tiny_bpe, add_bos=True))
    assert tok.encode("hello")[0] == 1
    assert tok.encode("<|im_start|>hello")[:2] != [1, 1]
    assert tok.encode("hello", add_bos=False) == tok.encode("hello")[1:]
    assert tok.bos_id == 1 and tok.eos_id == 2 and tok.eos_ids == {0, 2}


def test_pre_tokenizers_split_digits_as_their_models_do(tiny_bpe):
    def pieces(pre: str) -> list[str]:
        backend = Tokenizer.from_gguf(_material(tiny_bpe, pre=pre)).backend
        return [p for p, _ in backend.pre_tokenizer.pre_tokenize_str("x 12345")]

    assert pieces("smollm") == ["x", "Ġ", "1", "2", "3", "4", "5"]
    assert pieces("llama-bpe") == ["x", "Ġ", "123", "45"]
    assert pieces("qwen2") == ["x", "Ġ", "1", "2", "3", "4", "5"]
    assert pieces("gpt2") == ["x", "Ġ12345"]


def test_unknown_pre_tokenizer_is_refused(tiny_bpe):
    with pytest.raises(ModelFileError, match=r"pre-tokenizer 'mystery'.*tokenizer\.json"):
        Tokenizer.from_gguf(_material(tiny_bpe, pre="mystery"))


def test_chat_template_renders_with_hf_whitespace_rules(tok):
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}\n"
        "  {% if m.role == 'user' %}\n"
        "U:{{ m.content | tojson }}{{ eos_token }}\n"
        "  {% else %}\n"
        "A:{{ m.content }}\n"
        "  {% endif %}\n"
        "{% endfor %}"
    )
    text = tok.apply_chat_template(
        [{"role": "user", "content": "héllo"}, {"role": "assistant", "content": "hi"}]
    )
    assert text == '<|im_start|>U:"héllo"<|im_end|>\nA:hi\n'


def test_chat_template_helpers(tok):
    tok.chat_template = "{% if messages | length > 1 %}{{ raise_exception('one message only') }}{% endif %}"
    with pytest.raises(jinja2.TemplateError, match="one message only"):
        tok.apply_chat_template([{"role": "user", "content": "a"}] * 2)
    tok.chat_template = "{{ strftime_now('%Y') | length }}"
    assert tok.apply_chat_template([]) == "4"


def test_chat_template_is_sandboxed(tok):
    tok.chat_template = "{{ messages.__class__.__mro__ }}"
    with pytest.raises(jinja2.exceptions.SecurityError):
        tok.apply_chat_template([])


def test_encode_chat_adds_no_bos_of_its_own(tiny_bpe):
    tok = Tokenizer.from_gguf(_material(tiny_bpe, add_bos=True))
    ids = tok.encode_chat([{"role": "user", "content": "hi"}])
    assert ids[0] == 1 and ids[1] != 1
    assert tok.decode(ids, skip_special=False).endswith("<|im_start|>assistant\n")


def test_no_chat_template_is_a_clear_error(tiny_bpe):
    with pytest.raises(ModelFileError, match="no chat template"):
        Tokenizer.from_gguf(_material(tiny_bpe, chat_template=None)).apply_chat_template([])


def test_save_and_load_round_trip(tok, tmp_path):
    tok.save(tmp_path)
    again = Tokenizer.load(tmp_path)
    assert [again.encode(t) for t in TEXTS] == [tok.encode(t) for t in TEXTS]
    assert (again.bos_id, again.eos_id, again.eos_ids, again.add_bos) == (1, 2, {0, 2}, False)
    assert again.apply_chat_template(MESSAGES) == tok.apply_chat_template(MESSAGES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]


def test_load_hf_folder(tiny_bpe, tmp_path):
    backend = Backend.from_str(tiny_bpe.to_str())
    backend.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", special_tokens=[("<|im_start|>", 1)]
    )
    backend.save(str(tmp_path / "tokenizer.json"))
    config = {
        "bos_token": {"content": "<|im_start|>", "special": True},
        "eos_token": "<|im_end|>",
        "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
    }
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 0]}))

    tok = Tokenizer.load(tmp_path)
    assert (tok.bos_id, tok.eos_id, tok.eos_ids) == (1, 2, {0, 2})
    assert tok.add_bos  # read from the post-processor, which lifecard then bypasses
    assert tok.encode("the fox") == [1, *tiny_bpe.encode("the fox").ids]
    assert tok.apply_chat_template([]) == "D"
    (tmp_path / "chat_template.jinja").write_text("J")
    assert Tokenizer.load(tmp_path).apply_chat_template([]) == "J"


def test_folder_without_tokenizer_json(tmp_path):
    with pytest.raises(ModelFileError, match=r"has no tokenizer\.json"):
        Tokenizer.load(tmp_path)


def test_stream_decoder_never_splits_a_character(tok):
    text = "你好 😀 world<|im_end|>"
    ids = tok.encode(text)
    stream = StreamDecoder(tok)
    pieces = [stream.push(i) for i in ids]
    assert "".join(pieces) + stream.flush() == "你好 😀 world"
    assert "" in pieces  # bytes of one character arrive in several tokens and are held back
    assert not any("\ufffd" in p for p in pieces)


def test_stream_decoder_lets_invalid_bytes_through(tok):
    lone_continuation = tok.backend.token_to_id("Ģ")  # byte 0x80 on its own is never a character
    stream = StreamDecoder(tok)
    out = "".join(stream.push(lone_continuation) for _ in range(6))
    assert out.count("\ufffd") >= 3  # held at most 3 tokens, then emitted as it is
    assert (out + stream.flush()).count("\ufffd") == 6


@pytest.fixture(scope="module")
def real_pair():
    from transformers import AutoTokenizer

    path = default_model_path()
    ours = Tokenizer.from_gguf(read_tokenizer_material(open_gguf(path)))
    theirs = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return ours, theirs


@pytest.mark.integration
def test_default_model_encodes_like_transformers(real_pair):
    ours, theirs = real_pair
    chat = theirs.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    for text in [*TEXTS, chat]:
        ids = ours.encode(text)
        assert ids == theirs.encode(text), text
        assert ours.decode(ids, skip_special=False) == text
        assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=True)
    assert (ours.bos_id, ours.eos_id, ours.add_bos) == (theirs.bos_token_id, theirs.eos_token_id, False)
    assert ours.vocab_size == len(theirs)


@pytest.mark.integration
def test_default_model_chat_template_like_transformers(real_pair):
    ours, theirs = real_pair
    for messages in (MESSAGES, MESSAGES[1:]):  # with a system message, and with the template's own
        for prompt in (True, False):
            expected = theirs.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
            assert ours.apply_chat_template(messages, add_generation_prompt=prompt) == expected
    hf_ids = theirs.apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=True)
    assert ours.encode_chat(MESSAGES) == hf_ids["input_ids"]
