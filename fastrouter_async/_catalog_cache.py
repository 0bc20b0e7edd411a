"""FastRouter's own model list (``GET {base}/models``, no key needed), fetched and cached on disk.

The shipped catalog (:mod:`fastrouter_async._catalog`) knows each model's parameter rules; FastRouter's
list knows which models exist today and what they cost. :func:`refresh_catalog` fetches the list
and writes a normalised copy to a cache file; :func:`cached_catalog` reads it back for the
``models`` command and for cost estimates (:meth:`ListedCatalog.prices`, which ``price_for`` takes as
``listed=``). Validation needs nothing from it: a model id that is not in the shipped table is
accepted with the universal rules only, whether FastRouter lists it or not.

Everything the server sends is untrusted: the answer is read up to :data:`MAX_LIST_BYTES`, any JSON
shape is tolerated (entries that are not understood are skipped, unknown fields are ignored), and a
price is taken only from a field whose meaning is unambiguous. The cache file is written atomically
(a temporary file in the same folder, then a rename) and holds no key.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
import attrs

from ._config import DEFAULT_TIMEOUTS, Secret, resolve_base_url
from ._errors import (
    APIStatusError,
    APITimeoutError,
    FastRouterError,
    InvalidRequestError,
    UnexpectedResponseError,
)
from ._protocol import HttpCall
from ._specs import Price
from ._transport import Transport

__all__ = [
    "CACHE_FORMAT",
    "MAX_LIST_BYTES",
    "ListedCatalog",
    "ListedModel",
    "cached_catalog",
    "default_cache_path",
    "parse_model_list",
    "refresh_catalog",
]

MAX_LIST_BYTES = 8 * 1024 * 1024
"""The largest model list read (FastRouter's 300+ models are well under 1 MB); more is refused."""
_MAX_MODELS = 20_000  # entries kept from one list; the rest are ignored
_MAX_TEXT = 200  # longest id or name kept
_MAX_USD = 10_000.0  # a price above this is not a video price (a unit mix-up); it is ignored
CACHE_FORMAT = 1
_MODEL_ID_RE = re.compile(r"[^\s/]+/[^\s/]+")

# The pricing keys FastRouter's docs describe are per token ("prompt", "completion") and per image or
# request; none is documented for video. Taken as a video price: a per-second field, else a per-video one.
# A price of 0 or less means "not priced" (FastRouter lists 0 for what it bills otherwise), so it is skipped.
_PER_SECOND_KEYS = ("video_per_second", "per_second", "second", "video_second")
_PER_VIDEO_KEYS = ("video", "per_video", "request")


@attrs.frozen(kw_only=True)
class ListedModel:
    """One entry of FastRouter's model list: its id, name and video price if it gives one."""

    id: str
    name: str
    price: Price | None


@attrs.frozen(kw_only=True)
class ListedCatalog:
    """FastRouter's model list as fetched at ``fetched_at`` from ``source``."""

    models: Mapping[str, ListedModel]
    fetched_at: datetime.datetime
    source: str

    def prices(self) -> Mapping[str, Price]:
        """The video prices the list gives, by model id (for ``price_for(..., listed=...)``)."""
        return MappingProxyType({m.id: m.price for m in self.models.values() if m.price is not None})


def default_cache_path() -> Path:
    """Where the model list is cached: the platform's cache folder, ``fastrouter-async/models.json``.

    ``$XDG_CACHE_HOME`` when set (absolute), else ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%``
    on Windows and ``~/.cache`` elsewhere.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        base = Path(xdg)
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path.home() / ".cache"
    return base / "fastrouter-async" / "models.json"


# -- parsing -----------------------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip() and len(value) <= _MAX_TEXT:
        return value.strip()
    return None


def _usd(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and 0 < value <= _MAX_USD:
        return float(value)
    return None


def _price(model_id: str, pricing: object, *, source: str, as_of: datetime.date) -> Price | None:
    if not isinstance(pricing, Mapping):
        return None
    for keys, per in ((_PER_SECOND_KEYS, "second"), (_PER_VIDEO_KEYS, "video")):
        for key in keys:
            usd = _usd(pricing.get(key))
            if usd is not None:
                return Price(
                    model=model_id,
                    usd=usd,
                    per="second" if per == "second" else "video",
                    length=None,
                    source=f"FastRouter's model list ({source}), pricing.{key}",
                    as_of=as_of,
                )
    return None


def _entries(document: object) -> Iterable[object]:
    """The list of model objects, wherever a plausible shape puts it."""
    if isinstance(document, list):
        return document
    if isinstance(document, Mapping):
        for key in ("data", "models", "items", "results"):
            inner = document.get(key)
            if isinstance(inner, list):
                return inner
            if isinstance(inner, Mapping):
                return _entries(inner)
    return ()


def parse_model_list(body: bytes, *, source: str, fetched_at: datetime.datetime) -> ListedCatalog:
    """FastRouter's ``/models`` answer as a :class:`ListedCatalog`; entries not understood are skipped.

    Raises :class:`UnexpectedResponseError` when the body is not JSON or holds no model at all.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise UnexpectedResponseError(
            "the model list is not JSON", body=body[:200].decode("utf-8", "replace"), url=source
        ) from exc
    models: dict[str, ListedModel] = {}
    for entry in _entries(document):
        if len(models) >= _MAX_MODELS:
            break
        if not isinstance(entry, Mapping):
            continue
        model_id = _text(entry.get("id"))
        if model_id is None or _MODEL_ID_RE.fullmatch(model_id) is None:
            continue
        price = _price(model_id, entry.get("pricing"), source=source, as_of=fetched_at.date())
        models[model_id] = ListedModel(id=model_id, name=_text(entry.get("name")) or model_id, price=price)
    if not models:
        raise UnexpectedResponseError("the model list holds no model with an id", url=source)
    return ListedCatalog(models=MappingProxyType(models), fetched_at=fetched_at, source=source)


# -- the cache file ----------------------------------------------------------------------------------------


def _to_json(catalog: ListedCatalog) -> dict[str, Any]:
    def price(p: Price | None) -> dict[str, Any] | None:
        if p is None:
            return None
        return {"usd": p.usd, "per": p.per, "source": p.source, "as_of": p.as_of.isoformat()}

    return {
        "format": CACHE_FORMAT,
        "source": catalog.source,
        "fetched_at": catalog.fetched_at.isoformat(),
        "models": [{"id": m.id, "name": m.name, "price": price(m.price)} for m in catalog.models.values()],
    }


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".models-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _from_json(document: object) -> ListedCatalog | None:
    if not isinstance(document, Mapping) or document.get("format") != CACHE_FORMAT:
        return None
    try:
        fetched_at = datetime.datetime.fromisoformat(str(document["fetched_at"]))
        source = str(document["source"])
        models: dict[str, ListedModel] = {}
        for entry in document["models"]:
            raw = entry.get("price")
            price = None
            if raw is not None:
                per = raw["per"]
                if per not in ("video", "second"):
                    return None
                price = Price(
                    model=str(entry["id"]),
                    usd=float(raw["usd"]),
                    per="second" if per == "second" else "video",
                    length=None,
                    source=str(raw["source"]),
                    as_of=datetime.date.fromisoformat(str(raw["as_of"])),
                )
            models[str(entry["id"])] = ListedModel(id=str(entry["id"]), name=str(entry["name"]), price=price)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return ListedCatalog(models=MappingProxyType(models), fetched_at=fetched_at, source=source)


def cached_catalog(path: str | os.PathLike[str] | None = None) -> ListedCatalog | None:
    """The cached model list, or ``None`` when there is none or it cannot be read (then the shipped table applies)."""
    file = Path(path) if path is not None else default_cache_path()
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_LIST_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_LIST_BYTES:
        return None
    try:
        return _from_json(json.loads(data))
    except (ValueError, RecursionError):
        return None


# -- fetching ----------------------------------------------------------------------------------------------


async def _fetch(url: str, base_url: str, timeout: float) -> bytes:
    # No key: the list is public, so none is sent (an empty secret, and auth=False).
    transport = Transport(base_url=base_url, secret=Secret(""), timeouts=DEFAULT_TIMEOUTS)
    try:
        # One deadline for the whole exchange, so a server that drips bytes cannot hold the caller.
        with anyio.fail_after(timeout):
            return await _read_list(transport, url)
    except TimeoutError as exc:
        if isinstance(exc, FastRouterError):
            raise
        raise APITimeoutError(f"the model list took longer than {timeout:g} s", method="GET", url=url) from exc
    finally:
        await transport.aclose()


async def _read_list(transport: Transport, url: str) -> bytes:
    async with transport.stream(HttpCall("GET", url), auth=False) as response:
        if not 200 <= response.status < 300:
            raise APIStatusError(
                "the model list could not be fetched",
                status_code=response.status,
                method="GET",
                url=url,
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.iter_chunks(64 * 1024):
            size += len(chunk)
            if size > MAX_LIST_BYTES:
                raise UnexpectedResponseError(
                    f"the model list is larger than {MAX_LIST_BYTES} bytes; not read",
                    status_code=response.status,
                    method="GET",
                    url=url,
                )
            chunks.append(chunk)
        return b"".join(chunks)


async def refresh_catalog(
    base_url: str | None = None,
    *,
    cache_path: str | os.PathLike[str] | None = None,
    timeout: float = DEFAULT_TIMEOUTS.request,
) -> ListedCatalog:
    """Fetch FastRouter's public model list (``GET {base_url}/models``) and cache it on disk.

    ``base_url`` defaults to ``FASTROUTER_BASE_URL``, then FastRouter's; ``cache_path`` to
    :func:`default_cache_path`; ``timeout`` bounds the whole fetch (seconds). No API key is
    needed or sent. Returns what was cached. Raises
    :class:`APIConnectionError` when FastRouter cannot be reached, :class:`APIStatusError` for an
    error answer and :class:`UnexpectedResponseError` for a list that is too large or not
    understood; the cache file is then left as it was.
    """
    base = resolve_base_url(base_url)
    url = f"{base}/models"
    if not (isinstance(timeout, int | float) and timeout > 0):
        raise InvalidRequestError("timeout", timeout, "a positive number of seconds")
    body = await _fetch(url, base, float(timeout))
    catalog = parse_model_list(body, source=url, fetched_at=datetime.datetime.now(datetime.UTC))
    path = Path(cache_path) if cache_path is not None else default_cache_path()
    _write_atomically(path, json.dumps(_to_json(catalog), indent=1).encode())
    return catalog
