"""The real `lifecard` console script, run in subprocesses.

Bad input fails fast with exit code 2 and one `error: …` line that names the flag or the path, never a
traceback; sampling flags are checked before any model loads. The `integration` tests run the default
model through `generate`, `chat` and `models`.
"""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

_SCRIPT = Path(sys.executable).with_name("lifecard")
LIFECARD = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "lifecard.cli"]


def lifecard(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LIFECARD, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The failure contract: exit code 2, nothing on stdout, exactly one `error: …` line on stderr."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- fast: no model is loaded -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--top-p", "1.5"], "--top-p"),
        (["--temperature", "-1"], "--temperature"),
        (["--top-k", "-3"], "--top-k"),
        (["--max-tokens", "0"], "--max-tokens"),
        (["--num-beams", "2", "--temperature", "0.7"], "--temperature 0"),
        (["--num-beams", "2", "--temperature", "0", "--repetition-penalty", "1.3"], "--repetition-penalty 1"),
        (["--stop", ""], "--stop"),
    ],
)
def test_bad_sampling_flags_fail_before_the_model_loads(flags: list[str], named: str) -> None:
    # --model names a file that does not exist: were the model loaded first, the error would be about it
    line = one_error_line(lifecard("generate", "hi", *flags, "--model", "/nonexistent/model.gguf"))
    assert named in line and "/nonexistent" not in line


def test_chat_checks_sampling_flags_too() -> None:
    line = one_error_line(lifecard("chat", "--top-p", "1.5", "--model", "/nonexistent", stdin="hi\n"))
    assert "--top-p" in line


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--dtype", "float8"], "--dtype"),
        (["--device", "tpu"], "--device"),
        (["--model", "/nonexistent/model.gguf"], "/nonexistent/model.gguf"),
    ],
)
def test_bad_model_flags_name_the_flag_or_path(flags: list[str], named: str) -> None:
    line = one_error_line(lifecard("generate", "hi", *flags))
    assert named in line
    assert "float8" in line or "tpu" in line or "does not exist" in line


def test_model_that_is_a_text_file_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    line = one_error_line(lifecard("generate", "hi", "--model", str(notes)))
    assert str(notes) in line and "neither a .gguf file nor a model folder" in line


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("junk.gguf", b"\x00\x01 not gguf at all", "not a GGUF file"),
        ("cut.gguf", b"GGUF\x03\x00\x00\x00truncated", "cannot be read"),
    ],
)
def test_broken_gguf_files_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, content: bytes, says: str
) -> None:
    monkeypatch.setenv("LIFECARD_CACHE", str(tmp_path / "cache"))  # never touch the real cache
    path = tmp_path / name
    path.write_bytes(content)
    line = one_error_line(lifecard("generate", "hi", "--model", str(path)))
    assert str(path) in line and says in line


def test_folder_without_a_model_is_refused(tmp_path: Path) -> None:
    line = one_error_line(lifecard("generate", "hi", "--model", str(tmp_path)))
    assert str(tmp_path) in line and "config.json" in line


def test_unknown_option_is_a_usage_error_without_traceback() -> None:
    # click's usage error: a short usage block rather than one line, but it names the option
    result = lifecard("generate", "hi", "--bogus")
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "No such option" in result.stderr and "--bogus" in result.stderr


def test_help_lists_the_commands() -> None:
    result = lifecard("--help")
    assert result.returncode == 0
    for command in ("generate", "chat", "models"):
        assert command in result.stdout


# --- integration: the default model ---------------------------------------------------------------


@cache
def generated(prompt: str, *flags: str, max_tokens: int = 12) -> str:
    """stdout of a successful greedy `lifecard generate` (cached: each run loads the model)."""
    result = lifecard("generate", prompt, "--temperature", "0", "-n", str(max_tokens), *flags)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.mark.integration
def test_generate_prints_text() -> None:
    out = generated("What is 2+2?")
    assert out.endswith("\n") and len(out.strip()) > 3
    assert "4" in out


@pytest.mark.integration
def test_chat_keeps_and_resets_the_conversation() -> None:
    result = lifecard("chat", "--temperature", "0", "-n", "12", stdin="What is 2+2?\n/reset\nHi\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "(conversation forgotten)" in result.stderr
    # two replies, each as `generate` gives it for the message alone: after /reset, "Hi" starts afresh
    assert result.stdout == generated("What is 2+2?") + generated("Hi")


@pytest.mark.integration
def test_chat_ends_on_end_of_input() -> None:
    result = lifecard("chat", "--temperature", "0", "-n", "4", stdin="Hi\n/unknown\n")
    assert result.returncode == 0, result.stderr
    assert "unknown or incomplete command '/unknown'" in result.stderr
    assert result.stdout == generated("Hi", max_tokens=4)


@pytest.mark.integration
def test_models_lists_the_default_model() -> None:
    result = lifecard("models")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert "kind=default" in first and "SmolLM2-135M-Instruct" in first and "present=True" in first


@pytest.mark.integration
def test_generate_raw_continues_the_text() -> None:
    out = generated("The capital of France is", "--raw")
    assert "Paris" in out
    assert out != generated("The capital of France is")  # the chat template changes the prompt


@pytest.mark.integration
def test_generate_stop_cuts_the_text() -> None:
    full = generated("The capital of France is", "--raw")
    cut = generated("The capital of France is", "--raw", "--stop", "Paris", "--stop", "zzz")
    assert cut.endswith("\n")
    assert cut[:-1] == full[: full.index("Paris")]
