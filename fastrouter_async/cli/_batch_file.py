"""Reading a batch file into validated requests, or into every problem, each with its line and field.

Three formats, chosen by the file's extension:

- ``.txt``: one prompt per line; blank lines and lines starting with ``#`` are skipped.
- ``.jsonl``: one JSON object per line with the submit fields, in Python (``aspect_ratio``)
  or wire (``aspectRatio``) names; blank lines are skipped.
- ``.csv``: a header row names the fields; empty cells are left out, and the known
  whole-number and true/false fields are converted from text.

Nothing here sends anything: the whole file is read and checked first, so that a
mistake on line 400 is found before the first video is paid for.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from fastrouter_async import InvalidRequestError, VideoRequest, validate_request

__all__ = ["MAX_REPORTED", "BatchEntry", "BatchFile", "BatchFileError", "Problem", "load_batch_file"]

MAX_REPORTED: Final = 20
# Enough to see a pattern (a wrong column, a model that takes other durations) without
# burying the terminal when every one of 500 lines has the same mistake.

_INT_FIELDS: Final = frozenset({"length", "seconds", "seed"})
_BOOL_FIELDS: Final = frozenset({"generate_audio", "generateAudio"})
_TRUE: Final = frozenset({"true", "yes", "1", "on"})
_FALSE: Final = frozenset({"false", "no", "0", "off"})
_KNOWN_FIELDS: Final = frozenset(
    {"model", "prompt", "image", "length", "seconds", "resolution", "aspect_ratio", "aspectRatio"}
    | {"size", "mode", "seed", "generate_audio", "generateAudio", "extra"}
)
_FORMATS: Final = (
    ".txt (one prompt per line), .jsonl (one JSON object per line) or .csv (a header row naming the fields)"
)


@attrs.frozen
class BatchEntry:
    """One request of a batch file and the line it came from (1-based)."""

    line: int
    request: VideoRequest


@attrs.frozen
class Problem:
    """One thing wrong with a batch file: ``FILE:LINE: field X: value V: what is allowed``."""

    path: str
    line: int | None
    message: str
    field: str | None = None
    value: str | None = None
    """The offending value, already shortened for display (``None``: no value to show)."""

    def __str__(self) -> str:
        parts = [self.path if self.line is None else f"{self.path}:{self.line}"]
        if self.field is not None:
            parts.append(f"field {self.field}")
        if self.value is not None:
            parts.append(f"value {self.value}")
        parts.append(self.message)
        return ": ".join(parts)


class BatchFileError(Exception):
    """A batch file that cannot be run as it is; ``problems`` lists everything found."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(self.report())

    def report(self, limit: int = MAX_REPORTED) -> str:
        """The problems, one per line, at most ``limit`` of them, then how many more there are."""
        shown = [str(problem) for problem in self.problems[:limit]]
        hidden = len(self.problems) - len(shown)
        if hidden > 0:
            shown.append(f"... and {hidden} more problem{'s' if hidden != 1 else ''} in {self.path}")
        return "\n".join(shown)


@attrs.frozen
class BatchFile:
    """A batch file read and checked: its requests, and the pass-through parameter names it uses."""

    entries: list[BatchEntry]
    extra_fields: frozenset[str]
    """Keys or columns that are not known fields: sent unchanged, never checked."""


def load_batch_file(path: Path, *, default_model: str | None) -> BatchFile:
    """Read ``path`` and check every line; raise :class:`BatchFileError` listing every problem.

    ``default_model`` applies to lines that name no model (and to every line of a ``.txt`` file).
    """
    shown = str(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        what = f"unknown file type {path.suffix!r}" if path.suffix else "no file extension"
        raise BatchFileError(shown, [Problem(shown, None, f"{what}: use {_FORMATS}")])
    if reader is _read_txt and default_model is None:
        message = "a .txt file holds only prompts: give the model with --model"
        raise BatchFileError(shown, [Problem(shown, None, message)])
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets often start CSV files with a BOM
    except FileNotFoundError:
        raise BatchFileError(shown, [Problem(shown, None, "no such file")]) from None
    except UnicodeDecodeError as exc:
        line = _line_of(path.read_bytes(), exc.start)
        raise BatchFileError(shown, [Problem(shown, line, f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise BatchFileError(shown, [Problem(shown, None, f"cannot be read: {exc.strerror or exc}")]) from None

    problems: list[Problem] = []
    entries: list[BatchEntry] = []
    extra_fields: set[str] = set()
    for line, given in reader(shown, text, problems):
        fields = given
        if default_model is not None and given.get("model") in (None, ""):
            fields = {**given, "model": default_model}
        extra_fields.update(key for key in fields if key not in _KNOWN_FIELDS)
        request = _checked_request(shown, line, fields, problems)
        if request is not None:
            entries.append(BatchEntry(line, request))
    if not problems and not entries:
        problems.append(Problem(shown, None, "no requests found (only blank lines or comments)"))
    if problems:
        problems.sort(key=lambda problem: problem.line or 0)
        raise BatchFileError(shown, problems)
    return BatchFile(entries, frozenset(extra_fields))


def _line_of(data: bytes, offset: int) -> int:
    """The 1-based line number of byte ``offset`` in ``data``."""
    return data.count(b"\n", 0, offset) + 1


def _checked_request(path: str, line: int, fields: Mapping[str, Any], problems: list[Problem]) -> VideoRequest | None:
    try:
        request = VideoRequest.from_fields(fields)
        validate_request(request)
    except InvalidRequestError as exc:
        problems.append(_problem_from(path, line, exc))
        return None
    return request


def _problem_from(path: str, line: int, exc: InvalidRequestError) -> Problem:
    if exc.value is None and exc.field == "model":
        return Problem(path, line, "missing: name a model on this line, or give --model", field="model")
    if exc.value is None:
        return Problem(path, line, f"missing: {exc.allowed}", field=exc.field)
    message = exc.allowed if exc.model is None else f"{exc.allowed} (model {exc.model})"
    return Problem(path, line, message, field=exc.field, value=shorten(exc.value))


def shorten(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the three formats ---------------------------------------------------------------------------------

Reader = Callable[[str, str, list[Problem]], Iterator[tuple[int, dict[str, Any]]]]


def _read_txt(path: str, text: str, problems: list[Problem]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        prompt = raw.strip()
        if prompt and not prompt.startswith("#"):
            yield number, {"prompt": prompt}


def _read_jsonl(path: str, text: str, problems: list[Problem]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(Problem(path, number, f"malformed JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(value, dict):
            problems.append(
                Problem(
                    path,
                    number,
                    f'each line must be a JSON object such as {{"prompt": "a cat surfing"}}, not a {_json_type(value)}',
                )
            )
            continue
        yield number, value


def _json_type(value: object) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _read_csv(path: str, text: str, problems: list[Problem]) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        problems.append(Problem(path, reader.line_num, f"malformed CSV: {exc}"))
        return
    if header is None:
        return  # empty: reported as "no requests found"
    columns = [name.strip() for name in header]
    header_ok = True
    for position, name in enumerate(columns, start=1):
        if not name:
            problems.append(Problem(path, 1, f"the header's column {position} has no name"))
            header_ok = False
        elif name in columns[: position - 1]:
            problems.append(Problem(path, 1, f"the header names column {name!r} twice"))
            header_ok = False
    if not header_ok:
        return
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:
            problems.append(Problem(path, reader.line_num, f"malformed CSV: {exc}"))
            return
        if row is None:
            return
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            problems.append(
                Problem(path, number, f"{len(row)} values, but the header names only {len(columns)} columns")
            )
            continue
        fields = _typed_row(path, number, dict(zip(columns, row, strict=False)), problems)
        if fields is not None:
            yield number, fields


def _typed_row(path: str, line: int, row: Mapping[str, str], problems: list[Problem]) -> dict[str, Any] | None:
    """Drop empty cells and convert the known whole-number and true/false fields."""
    fields: dict[str, Any] = {}
    ok = True
    for name, cell in row.items():
        text = cell.strip()
        if not text:
            continue
        if name in _INT_FIELDS:
            try:
                fields[name] = int(text)
            except ValueError:
                problems.append(Problem(path, line, "a whole number", field=name, value=shorten(cell)))
                ok = False
        elif name in _BOOL_FIELDS:
            lowered = text.lower()
            if lowered in _TRUE or lowered in _FALSE:
                fields[name] = lowered in _TRUE
            else:
                problems.append(Problem(path, line, "true or false (or yes/no, 1/0)", field=name, value=shorten(cell)))
                ok = False
        else:
            fields[name] = text
    return fields if ok else None


_READERS: Final[Mapping[str, Reader]] = {".txt": _read_txt, ".jsonl": _read_jsonl, ".csv": _read_csv}
