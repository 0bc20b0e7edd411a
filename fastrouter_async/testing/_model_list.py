"""What the simulated ``GET /api/v1/models`` answers by default: a short, plausible model list.

The shape follows FastRouter's documented answer (``{"object": "list", "data": [...]}``, each entry
with ``id``, ``name``, ``object``, ``created``, ``owned_by`` and ``pricing`` with USD amounts as
strings). FastRouter documents no video pricing key; the simulator uses ``pricing.request`` (USD per
video) and ``pricing.video_per_second``, the two the client reads. The numbers are made up for tests.
"""

from __future__ import annotations

from typing import Any

__all__ = ["default_model_list"]


def _entry(model_id: str, name: str, owner: str, pricing: dict[str, str]) -> dict[str, Any]:
    return {
        "id": model_id,
        "name": name,
        "object": "model",
        "created": 1764806400,
        "owned_by": owner,
        "context_length": 0,
        "pricing": {"prompt": "0", "completion": "0", **pricing},
    }


def default_model_list() -> dict[str, Any]:
    """A fresh copy of the default list (video models with prices, one chat model, one new video model)."""
    return {
        "object": "list",
        "data": [
            _entry("kling-ai/kling-v1-6", "Kling V1.6", "kling-ai", {"request": "0.21"}),
            _entry("google/veo3", "Veo 3", "google", {"video_per_second": "0.40"}),
            _entry("wanx/wan-v3-0", "Wan 3.0", "wanx", {"video_per_second": "0.09"}),
            _entry("acme/video-next", "Acme Video Next", "acme", {"request": "0.50"}),
            {
                "id": "openai/gpt-4o-mini",
                "name": "GPT-4o mini",
                "object": "model",
                "pricing": {"prompt": "0.00000015", "completion": "0.0000006"},
            },
        ],
    }
