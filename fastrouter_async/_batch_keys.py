"""The cache key of each job of a batch: deterministic from the batch's identity and the job's.

FastRouter's response cache answers a repeated create request that carries the same ``cache_key``
with the same task, unbilled (see :mod:`._cachekey`). A batch makes that key from what identifies
the job, never from chance, so that any later attempt at the same job, in this run or in a re-run
after a crash, carries the same key:

- the batch's **namespace**: a SHA-256 of the journal's resolved absolute path (without a journal,
  of the output folder's), so the same batch into the same folder reuses its keys, even after its
  journal was deleted; a batch shared by processes through a store (no journal) takes it from the
  output folder's resolved path (:func:`shared_namespace`), the same in every process given that path;
- the request's **fingerprint** (over the generation body only, never the ``cache`` object) and its
  **occurrence** among identical requests, as the journal identifies the job;
- the job's **generation**: 0, then one more each time ``retry_failed`` submits a failed job again,
  so a retry is a new job with a new key (the old key would only find the failed task again).

Pure functions; no I/O except resolving a path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._cachekey import CACHE_BODY_FIELD, job_cache_key

__all__ = ["batch_job_key", "batch_namespace", "request_fingerprint", "shared_namespace"]


def request_fingerprint(body: Mapping[str, Any]) -> str:
    """The sha256 of the generation body (canonical JSON), without the ``cache`` object: same request, same value."""
    generation = {name: value for name, value in body.items() if name != CACHE_BODY_FIELD}
    canonical = json.dumps(generation, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def batch_namespace(*, journal: Path | None, output_dir: Path | None) -> str | None:
    """The namespace of a batch's keys: from its journal's path, else its output folder's, else ``None``.

    ``None`` means the batch has no identity to derive keys from: each job then gets a fresh key.
    """
    if journal is not None:
        kind, path = "journal", journal
    elif output_dir is not None:
        kind, path = "output_dir", output_dir
    else:
        return None
    text = f"fastrouter-async batch {kind}\0{path.expanduser().resolve()}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def shared_namespace(output_dir: Path) -> str:
    """The namespace of a batch run by several processes through a shared store: from its output folder.

    Every process must be given the same folder path (the same text once resolved): the keys, and so
    the store's record of each line, are the same in all of them only then.
    """
    text = f"fastrouter-async shared batch\0{output_dir.expanduser().resolve()}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def batch_job_key(*, namespace: str, fingerprint: str, occurrence: int, generation: int) -> str:
    """The key of one job of a batch; a new ``generation`` (a retry of a failed job) gives a new key."""
    scoped = namespace if generation == 0 else f"{namespace}:retry{generation}"
    return job_cache_key(namespace=scoped, fingerprint=fingerprint, occurrence=occurrence)
