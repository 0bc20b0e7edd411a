"""Safe file names: slugs that stay inside their folder on every platform, and no silent overwrites."""

from __future__ import annotations

import os
import sys
import unicodedata
from pathlib import Path

import pytest

from fastrouter_async import InvalidRequestError, safe_filename, unique_path

WINDOWS_FORBIDDEN = set('<>:"/\\|?*')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A cat surfing at sunset, 4K!", "a-cat-surfing-at-sunset-4k.mp4"),
        ("..", "video.mp4"),
        ("...", "video.mp4"),
        ("../../etc/passwd", "etc-passwd.mp4"),
        ("/etc/passwd", "etc-passwd.mp4"),
        ("C:\\x", "c-x.mp4"),
        ("C:\\Windows\\System32\\cmd.exe", "c-windows-system32-cmd-exe.mp4"),
        ("a\x00b\nc\td\x7fe", "a-b-c-d-e.mp4"),
        ("\u202eevil\u200b", "evil.mp4"),
        ("CON", "con_.mp4"),
        ("nul", "nul_.mp4"),
        ("Com1", "com1_.mp4"),
        ("lpt9", "lpt9_.mp4"),
        ("console", "console.mp4"),
        ("", "video.mp4"),
        ("   \t\n", "video.mp4"),
        ("🎬 🎥", "video.mp4"),
        ("ÉTÉ à Paris", "été-à-paris.mp4"),
        ("\uff46\uff55\uff4c\uff4c\uff0f\uff57\uff49\uff44\uff54\uff48", "full-width.mp4"),  # full-width letters, slash
        ("fr_01M1Y389KN0KN28AT3733Q505H", "fr_01m1y389kn0kn28at3733q505h.mp4"),
        ('what? a "quote" <tag> | pipe * star', "what-a-quote-tag-pipe-star.mp4"),
    ],
)
def test_safe_filename_table(text: str, expected: str) -> None:
    """Prompts, task ids and hostile strings become the expected slug."""
    assert safe_filename(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "猫" * 200,
        "ä" * 300,
        "word " * 100,
        "x" * 1000,
        "a" * 95 + " " + "b" * 50,
        "हिन्दी वीडियो " * 30,
        "e\u0301" * 200,  # decomposed accents: NFKC composes them
    ],
)
@pytest.mark.parametrize("max_length", [12, 50, 100, 255])
def test_safe_filename_is_bounded_in_bytes(text: str, max_length: int) -> None:
    """Long (and multi-byte) text is cut to max_length bytes of UTF-8, suffix included, on whole characters."""
    name = safe_filename(text, max_length=max_length)
    assert 5 < len(name.encode("utf-8")) <= max_length
    assert name.endswith(".mp4")
    assert name == unicodedata.normalize("NFC", name)


def test_safe_filename_cuts_at_a_word_boundary() -> None:
    """A long prompt is cut between words, not inside one, when that keeps most of the room."""
    name = safe_filename("alpha beta gamma delta epsilon", max_length=20)
    assert name == "alpha-beta-gamma.mp4"


@pytest.mark.parametrize(
    "text",
    [
        "../x",
        "..\\..\\x",
        "/",
        "\\\\server\\share",
        "C:",
        "a/../../b",
        ".",
        "CON.txt",
        "\x00",
        "\r\n",
        "AUX",
        "x" * 400,
    ],
)
def test_safe_filename_never_escapes(text: str) -> None:
    """Whatever the input, the name has no separator, no control character, no device name and no dot-only form."""
    name = safe_filename(text)
    assert name not in (".", "..")
    assert not WINDOWS_FORBIDDEN & set(name)
    assert all(unicodedata.category(ch)[0] != "C" for ch in name)
    assert name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}
    assert unique_path("out", name) == Path("out") / name  # accepted as a plain name


def test_safe_filename_options() -> None:
    """suffix, fallback and lowercase change the name as documented."""
    assert safe_filename("Clip", suffix=".webm") == "clip.webm"
    assert safe_filename("Clip", suffix="") == "clip"
    assert safe_filename("Clip", lowercase=False) == "Clip.mp4"
    assert safe_filename("", fallback="fr_01ABC") == "fr_01abc.mp4"
    assert safe_filename("!!!", fallback="Untitled clip") == "untitled-clip.mp4"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"suffix": "mp4"}, "suffix"),
        ({"suffix": "./../x"}, "suffix"),
        ({"suffix": ".mp4/"}, "suffix"),
        ({"max_length": 5}, "max_length"),
        ({"max_length": 256}, "max_length"),
        ({"max_length": True}, "max_length"),
        ({"fallback": "!!"}, "fallback"),
    ],
)
def test_safe_filename_rejects_bad_options(kwargs: dict[str, object], field: str) -> None:
    """Unusable options raise InvalidRequestError naming the option."""
    with pytest.raises(InvalidRequestError) as caught:
        safe_filename("", **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_safe_filename_rejects_non_text() -> None:
    """Only strings are slugged."""
    with pytest.raises(InvalidRequestError, match="text"):
        safe_filename(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "../x.mp4",
        "a/b.mp4",
        "a\\b.mp4",
        "/etc/passwd",
        "C:\\x",
        "C:x.mp4",
        "nul\x00.mp4",
        "line\nbreak.mp4",
        "CON",
        "con.mp4",
        "trailing.",
        "x" * 252 + ".mp4",
    ],
)
def test_unique_path_refuses_names_that_could_escape(tmp_path: Path, name: str) -> None:
    """A name with a separator, a drive, a control character, a device name or too many bytes is refused."""
    with pytest.raises(InvalidRequestError) as caught:
        unique_path(tmp_path, name)
    error = caught.value
    assert error.field == "name"
    assert error.value == name
    assert "plain file name" in str(error)
    assert list(tmp_path.iterdir()) == []


def test_unique_path_numbers_taken_names(tmp_path: Path) -> None:
    """An existing file is never chosen: name-2, name-3, ... the first free one."""
    assert unique_path(tmp_path, "clip.mp4") == tmp_path / "clip.mp4"
    (tmp_path / "clip.mp4").write_bytes(b"1")
    assert unique_path(tmp_path, "clip.mp4") == tmp_path / "clip-2.mp4"
    (tmp_path / "clip-2.mp4").write_bytes(b"2")
    (tmp_path / "clip-3.mp4").mkdir()
    assert unique_path(tmp_path, "clip.mp4") == tmp_path / "clip-4.mp4"
    assert unique_path(tmp_path, "clip.mp4", overwrite=True) == tmp_path / "clip.mp4"
    assert unique_path(str(tmp_path), "noext") == tmp_path / "noext"
    (tmp_path / "noext").write_bytes(b"")
    assert unique_path(tmp_path, "noext") == tmp_path / "noext-2"
    (tmp_path / ".hidden").write_bytes(b"")
    assert unique_path(tmp_path, ".hidden") == tmp_path / ".hidden-2"


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_unique_path_counts_a_dangling_symlink_as_taken(tmp_path: Path) -> None:
    """A symlink (even one pointing nowhere) is an existing entry, never silently replaced."""
    os.symlink(tmp_path / "missing", tmp_path / "clip.mp4")
    assert unique_path(tmp_path, "clip.mp4") == tmp_path / "clip-2.mp4"


def test_unique_path_keeps_numbered_names_within_the_byte_limit(tmp_path: Path) -> None:
    """A numbered variant of a 255-byte name is shortened to stay at 255 bytes."""
    name = "é" * 125 + ".mp4"  # 254 bytes
    (tmp_path / name).write_bytes(b"")
    numbered = unique_path(tmp_path, name)
    assert numbered.name.endswith("-2.mp4")
    assert len(numbered.name.encode()) <= 255
    assert numbered.parent == tmp_path


def test_safe_filename_and_unique_path_together(tmp_path: Path) -> None:
    """The names made from the same prompt twice do not collide once the first file exists."""
    first = unique_path(tmp_path, safe_filename("A cat, surfing"))
    first.write_bytes(b"x")
    second = unique_path(tmp_path, safe_filename("a CAT surfing!"))
    assert (first.name, second.name) == ("a-cat-surfing.mp4", "a-cat-surfing-2.mp4")
