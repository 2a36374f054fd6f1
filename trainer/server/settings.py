"""Server settings: keys, size limits, memory budget and batching, read from the environment once.

`tunepilot serve` builds these from its options; `create_app()` without arguments reads the
environment, so `uvicorn 'trainer.server:create_app' --factory` works the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MB = 1024 * 1024


def _env_float(name: str, default: float | None) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number; set it to a number such as 4.") from None


@dataclass
class ServerSettings:
    """Everything the app needs to know that is not a request."""

    # Bearer token every /v1 request must carry; None leaves the API open (loopback use).
    api_key: str | None = None
    # Bearer token for owner-only actions (deleting fine-tuned models) once any key is set.
    owner_key: str | None = None
    # JSON bodies above this many bytes are refused with 413; uploads get their own, larger limit.
    max_body_bytes: int = 1 * MB
    max_upload_bytes: int = 100 * MB
    # Loaded model weights are kept under this many bytes; None picks half the free memory.
    memory_budget_bytes: int | None = None
    # Concurrent non-streamed requests with the same model and sampling settings share one
    # generate() call, up to this many rows; 1 turns micro-batching off.
    max_batch_size: int = 8
    # max_tokens when a request does not say (OpenAI's default is "up to the context", too long on a CPU).
    default_max_tokens: int = 512

    @classmethod
    def from_env(cls) -> "ServerSettings":
        budget_gb = _env_float("TUNEPILOT_SERVE_MEMORY_GB", None)
        return cls(
            api_key=os.environ.get("TUNEPILOT_API_KEY") or None,
            owner_key=os.environ.get("TUNEPILOT_OWNER_KEY") or None,
            max_body_bytes=int(_env_float("TUNEPILOT_SERVE_MAX_BODY_MB", 1.0) * MB),
            max_upload_bytes=int(_env_float("TUNEPILOT_SERVE_MAX_UPLOAD_MB", 100.0) * MB),
            memory_budget_bytes=int(budget_gb * 1024 * MB) if budget_gb else None,
            max_batch_size=max(1, int(_env_float("TUNEPILOT_SERVE_MAX_BATCH", 8))),
            default_max_tokens=max(1, int(_env_float("TUNEPILOT_SERVE_DEFAULT_MAX_TOKENS", 512))),
        )

    @property
    def keys_set(self) -> bool:
        return bool(self.api_key or self.owner_key)
