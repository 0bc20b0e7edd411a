"""``models``: the known models and the parameters each accepts, as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from fastrouter_async import MODELS, ModelSpec

from ._runtime import EXIT_OK, say, stdout_is_terminal

__all__ = ["model_rows", "run_models"]

_ANY = "any"
# Shown where the catalog documents no rule: the value is not checked and the server decides.
_CHUNK = re.compile(r"\d+|\D+")


def _natural(value: int | str) -> tuple[tuple[int, int | str], ...]:
    """Numbers in numeric order ("480p" < "1080p"; 5 < 10); "4k" after "1080p"."""
    if isinstance(value, int):
        return ((0, value),)
    text = value.lower()
    if text.endswith("k") and text[:-1].isdecimal():
        return ((0, int(text[:-1]) * 540),)  # "4k" is 2160 lines
    return tuple((0, int(chunk)) if chunk.isdecimal() else (1, chunk) for chunk in _CHUNK.findall(text))


def _sorted(values: Iterable[int] | Iterable[str] | None) -> list[Any] | None:
    return None if values is None else sorted(values, key=_natural)


def model_rows() -> list[dict[str, Any]]:
    """Every known model as a plain dict (sorted value lists; ``None`` where nothing is documented)."""
    return [_row(spec) for spec in sorted(MODELS.values(), key=lambda spec: spec.id)]


def _row(spec: ModelSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "name": spec.name,
        "provider": spec.provider,
        "image": spec.image,
        "duration_field": spec.duration_field,
        "durations": _sorted(spec.durations),
        "duration_required": spec.duration_required,
        "resolutions": _sorted(spec.resolutions),
        "resolution_required": spec.resolution_required,
        "aspect_ratios": _sorted(spec.aspect_ratios),
        "sizes": _sorted(spec.sizes),
        "modes": _sorted(spec.modes),
        "max_prompt_length": spec.max_prompt_length,
        "supports_audio": spec.supports_audio,
        "notes": spec.notes,
    }


def _cell(values: list[Any] | None, *, required: bool = False) -> str:
    if values is None:
        return _ANY
    text = ", ".join(str(value) for value in values)
    return f"{text} (required)" if required else text


def _audio(value: bool | None) -> str:
    return _ANY if value is None else "yes" if value else "no"


_HEADERS = ("model", "provider", "image", "length / seconds", "resolution", "aspect ratio", "size", "mode", "audio")


def _table_rows() -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for row in model_rows():
        durations = _cell(row["durations"], required=row["duration_required"])
        rows.append(
            (
                row["id"],
                row["provider"],
                row["image"],
                f"{row['duration_field']}: {durations}",
                _cell(row["resolutions"], required=row["resolution_required"]),
                _cell(row["aspect_ratios"]),
                _cell(row["sizes"]) if row["sizes"] is not None else "-",
                _cell(row["modes"]),
                _audio(row["supports_audio"]),
            )
        )
    return rows


_LEGEND = (
    f"'{_ANY}': not documented for this model, so not checked (the server decides). "
    "'-': not accepted. Resolutions 'required' only without an image. "
    "Unknown model ids are accepted too, with the universal rules only."
)


def run_models(options: argparse.Namespace) -> int:
    """Print the catalog."""
    if options.json:
        say(json.dumps(model_rows(), indent=2))
        return EXIT_OK
    rows = _table_rows()
    if stdout_is_terminal():
        table = Table(*_HEADERS, title="Known FastRouter video models", caption=_LEGEND)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return EXIT_OK
    widths = [max(len(cells[i]) for cells in [_HEADERS, *rows]) for i in range(len(_HEADERS))]
    for cells in [_HEADERS, *rows]:
        say("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip())
    say()
    say(_LEGEND)
    return EXIT_OK
