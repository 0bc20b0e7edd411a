"""What a batch is given, checked before anything is sent: the requests, the output folder, file names."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._errors import InvalidRequestError
from ._filenames import safe_filename
from ._integrity import file_digests
from ._models import VideoRequest
from ._validate import validate

__all__ = ["default_filename", "file_matches", "output_dir_path", "prepare_requests"]


def prepare_requests(requests: Iterable[VideoRequest | Mapping[str, Any]], *, check: bool) -> list[VideoRequest]:
    """Turn the input into requests and validate every one before anything is sent."""
    if isinstance(requests, str | bytes | Mapping):
        raise InvalidRequestError(
            "requests", requests, "an iterable of VideoRequest objects or mappings of submit fields"
        )
    prepared: list[VideoRequest] = []
    for index, item in enumerate(requests):
        try:
            request = item if isinstance(item, VideoRequest) else VideoRequest.from_fields(item)
            if check:
                validate(request)
        except InvalidRequestError as exc:
            exc.add_note(f"fastrouter_async: in request #{index} of the batch (0-based); nothing was submitted")
            raise
        prepared.append(request)
    return prepared


def default_filename(index: int, request: VideoRequest) -> str:
    """``0001-a-cat-surfing-at-sunset.mp4``: the 1-based position, then the prompt."""
    return f"{index + 1:04d}-{safe_filename(request.prompt, max_length=72)}"


def file_matches(path: Path, size: int, sha256: str) -> bool:
    """Whether the file at ``path`` has ``size`` bytes and the sha256 ``sha256`` (blocking: a worker thread)."""
    try:
        if path.stat().st_size != size:
            return False
        (digest,) = file_digests(path, "sha256")
    except OSError:
        return False
    return digest.hex() == sha256


def output_dir_path(value: str | os.PathLike[str] | None) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise InvalidRequestError("output_dir", value, "a folder path, or None not to download")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise InvalidRequestError("output_dir", value, "a folder (this path is a file)")
    return path
