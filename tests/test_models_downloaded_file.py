"""DownloadedFile reads like the path it describes: str(), os.fspath(), open() and Path()."""

from __future__ import annotations

import os
from pathlib import Path

from fastrouter_async import DownloadedFile


def _file(path: Path) -> DownloadedFile:
    return DownloadedFile(path=path, size=3, sha256="ab" * 32, task_id="fr_1")


def test_str_is_the_path(tmp_path: Path) -> None:
    """str() of a DownloadedFile is its path as a string, so printing it shows the path."""
    path = tmp_path / "out" / "cat.mp4"
    assert str(_file(path)) == str(path)
    assert f"{_file(path)}" == str(path)


def test_repr_keeps_every_field(tmp_path: Path) -> None:
    """repr() still shows the whole value (path, size, sha256, task id), unlike str()."""
    text = repr(_file(tmp_path / "cat.mp4"))
    assert text.startswith("DownloadedFile(")
    assert "size=3" in text
    assert "ab" * 32 in text
    assert "fr_1" in text


def test_path_like(tmp_path: Path) -> None:
    """os.fspath(), Path() and open() accept a DownloadedFile as the path it names."""
    path = tmp_path / "cat.mp4"
    path.write_bytes(b"abc")
    file = _file(path)
    assert os.fspath(file) == str(path)
    assert Path(file) == path
    with open(file, "rb") as handle:
        assert handle.read() == b"abc"
    assert file.exists()
