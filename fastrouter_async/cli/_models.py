"""``models``: the known models and the parameters each accepts, as a table or as JSON.

``--refresh`` first fetches FastRouter's public model list into the local cache; models listed there
but missing from the shipped catalog are shown too (their rules are unknown), and prices come from
the list when it gives them, else from the shipped, dated price table.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Final

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from fastrouter_async import (
    MODELS,
    FastRouterError,
    InvalidRequestError,
    ListedCatalog,
    ListedModel,
    ModelSpec,
    Price,
    cached_catalog,
    find_model,
    price_for,
    refresh_catalog,
)

from .._validate import natural_key
from ._options import PROG
from ._runtime import EXIT_OK, say, stdout_is_terminal

__all__ = ["model_rows", "run_models"]

_ANY = "any"
# Shown where the catalog documents no rule: the value is not checked and the server decides.


def _sorted(values: Iterable[int] | Iterable[str] | None) -> list[Any] | None:
    return None if values is None else sorted(values, key=natural_key)


def model_rows(listed: ListedCatalog | None = None) -> list[dict[str, Any]]:
    """Every known model as a plain dict (sorted value lists; ``None`` where nothing is documented).

    With ``listed`` (FastRouter's cached list), its models missing from the catalog are added with
    unknown rules, and its prices are preferred.
    """
    prices = listed.prices() if listed is not None else {}
    rows = [_row(spec, prices) for spec in MODELS.values()]
    if listed is not None:
        rows += [_listed_row(model, prices) for model in listed.models.values() if _is_new(model)]
    return sorted(rows, key=lambda row: row["id"])


def _is_new(model: ListedModel) -> bool:
    return find_model(model.id) is None


def _price(price: Price | None) -> dict[str, Any] | None:
    if price is None:
        return None
    return {
        "usd": price.usd,
        "per": price.per,
        "length": price.length,
        "source": price.source,
        "as_of": price.as_of.isoformat(),
    }


def _listed_row(model: ListedModel, prices: Mapping[str, Price]) -> dict[str, Any]:
    unknown = dict.fromkeys(("durations", "resolutions", "aspect_ratios", "sizes", "modes"))
    return {
        "id": model.id,
        "name": model.name,
        "provider": model.id.split("/", 1)[0],
        "image": "unknown",
        "duration_field": "length",
        "duration_required": False,
        "resolution_required": False,
        "max_prompt_length": None,
        "supports_audio": None,
        **unknown,
        "max_duration": None,
        "retired": None,
        "price": _price(price_for(model.id, listed=prices)),
        "source": "listed",
        "notes": "Listed by FastRouter but not in this version's catalog: only the universal rules apply.",
    }


def _row(spec: ModelSpec, prices: Mapping[str, Price]) -> dict[str, Any]:
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
        "max_duration": spec.max_duration,
        "retired": spec.retired.isoformat() if spec.retired is not None else None,
        "price": _price(price_for(spec.id, listed=prices)),
        "source": "catalog",
        "notes": spec.notes,
    }


def _cell(values: list[Any] | None, *, required: bool = False) -> str:
    if values is None:
        return _ANY
    if len(values) > 4 and all(isinstance(v, int) for v in values) and values[-1] - values[0] == len(values) - 1:
        text = f"{values[0]}-{values[-1]}"  # a run of whole seconds, e.g. 2-15
    else:
        text = ", ".join(str(value) for value in values)
    return f"{text} (required)" if required else text


def _audio(value: bool | None) -> str:
    return _ANY if value is None else "yes" if value else "no"


def _price_cell(price: dict[str, Any] | None) -> str:
    if price is None:
        return "unknown"
    if price["per"] == "second":
        return f"{price['usd']:g} USD/s"
    length = f" ({price['length']} s)" if price["length"] is not None else ""
    return f"{price['usd']:g} USD/video{length}"


def _model_cell(row: dict[str, Any]) -> str:
    if row["retired"] is not None:
        return f"{row['id']} (retired {row['retired']})"
    if row["source"] == "listed":
        return f"{row['id']} (listed only)"
    return str(row["id"])


def _duration_cell(row: dict[str, Any]) -> str:
    if row["max_duration"] is not None and row["durations"] is None:
        return f"{row['duration_field']}: at most {row['max_duration']}"
    return f"{row['duration_field']}: {_cell(row['durations'], required=row['duration_required'])}"


_HEADERS = (
    "model",
    "provider",
    "image",
    "length / seconds",
    "resolution",
    "aspect ratio",
    "size",
    "mode",
    "audio",
    "price",
)


def _table_rows(listed: ListedCatalog | None) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for row in model_rows(listed):
        rows.append(
            (
                _model_cell(row),
                row["provider"],
                row["image"],
                _duration_cell(row),
                _cell(row["resolutions"], required=row["resolution_required"]),
                _cell(row["aspect_ratios"]),
                _cell(row["sizes"]) if row["sizes"] is not None else "-",
                _cell(row["modes"]),
                _audio(row["supports_audio"]),
                _price_cell(row["price"]),
            )
        )
    return rows


_LEGEND = (
    f"'{_ANY}': not documented for this model, so not checked (the server decides). "
    "'-': not accepted. Resolutions 'required' only without an image. "
    "Unknown model ids are accepted too, with the universal rules only. "
    "Retired models are refused unless a request sets allow_retired. "
    "'listed only': in FastRouter's list (models --refresh), not in this catalog."
)


_DROPPED_FIRST: Final = ("size", "mode", "provider", "audio", "aspect ratio", "image", "price", "resolution")
# On a terminal too narrow for every column, these are left out, in this order, until the
# table fits with every model id whole; "length / seconds" and the model always stay.


_UNBOUNDED: Final = 100_000
# Columns: a width no table reaches, to measure the narrowest the table can be.


def _model_text(cell: str) -> str:
    """The id on a line of its own: a "(retired ...)" or "(listed only)" note goes on the next line."""
    model, space, note = cell.partition(" ")
    return f"{model}\n{note}" if space else model


def _table(rows: list[tuple[str, ...]], shown: list[int], longest: int, hidden: list[str]) -> Table:
    caption = _LEGEND
    if hidden:
        caption += f" Left out to fit the terminal: {', '.join(hidden)} (widen it, or use --json)."
    table = Table(title="Known FastRouter video models", caption=caption)
    table.add_column(_HEADERS[0], no_wrap=True, overflow="fold", min_width=longest)
    for index in shown:
        table.add_column(_HEADERS[index], overflow="fold")
    for row in rows:
        table.add_row(Text(_model_text(row[0])), *(Text(row[index]) for index in shown))
    return table


def terminal_table(rows: list[tuple[str, ...]], console: Console) -> tuple[Table, int]:
    """The models as a rich table whose model ids are never cut or folded, and the width to print it at.

    The id column is as wide as the longest id; the other columns wrap between words, and when
    even their narrowest layout does not fit the terminal, the least needed ones are left out
    (the caption says which). On a terminal narrower than the id column and the durations, the
    table is printed wider than the terminal, which then wraps its lines: ids stay whole.
    """
    longest = max((len(_model_text(row[0]).split("\n")[0]) for row in rows), default=len(_HEADERS[0]))
    unbounded = console.options.update_width(_UNBOUNDED)
    for dropped in range(len(_DROPPED_FIRST) + 1):
        hidden = list(_DROPPED_FIRST[:dropped])
        shown = [index for index in range(1, len(_HEADERS)) if _HEADERS[index] not in hidden]
        table = _table(rows, shown, longest, hidden)
        minimum = Measurement.get(console, unbounded, table).minimum
        if minimum <= console.width:
            return table, console.width
    return table, minimum


async def _refreshed(options: argparse.Namespace) -> ListedCatalog | None:
    """Fetch FastRouter's model list into the cache; on failure say so in one line and use what there is."""
    try:
        listed = await refresh_catalog(options.base_url)
    except InvalidRequestError:
        raise  # a bad --base-url is a usage error, not an unreachable server
    except FastRouterError as exc:
        cached = cached_catalog()
        fallback = (
            f"using the list cached on {cached.fetched_at:%Y-%m-%d %H:%M} UTC"
            if cached is not None
            else "using the shipped catalog"
        )
        reason = str(exc).splitlines()[0][:200]
        say(f"{PROG}: could not refresh the model list ({type(exc).__name__}: {reason}); {fallback}", file=sys.stderr)
        return cached
    say(f"{PROG}: fetched {len(listed.models)} models from {listed.source}", file=sys.stderr)
    return listed


async def run_models(options: argparse.Namespace) -> int:
    """Print the catalog (after fetching FastRouter's model list, with ``--refresh``)."""
    listed = await _refreshed(options) if options.refresh else cached_catalog()
    if options.json:
        say(json.dumps(model_rows(listed), indent=2))
        return EXIT_OK
    rows = _table_rows(listed)
    if stdout_is_terminal():
        console = Console()
        table, width = terminal_table(rows, console)
        if width > console.width:
            console = Console(width=width)  # the terminal wraps the lines, the ids stay whole
        console.print(table)
        return EXIT_OK
    widths = [max(len(cells[i]) for cells in [_HEADERS, *rows]) for i in range(len(_HEADERS))]
    for cells in [_HEADERS, *rows]:
        say("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip())
    say()
    say(_LEGEND)
    return EXIT_OK
