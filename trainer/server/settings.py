"""Server settings: keys, size limits, memory budget and batching, in the units the app works in.

`tunepilot serve` builds these from its options; `create_app()` without arguments reads the
environment (`TUNEPILOT_API_KEY`, `TUNEPILOT_OWNER_KEY`, `TUNEPILOT_SERVE_*`, validated by
`tunepilot.core.settings`), so `uvicorn 'trainer.server:create_app' --factory` works the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunepilot.core.settings import settings

MB = 1024 * 1024


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
    # Let clients name local folders (and hub ids) as `model`; off: only the workspace's own model ids.
    allow_local_paths: bool = False
    # A request whose body has not fully arrived after this many seconds gets 408 (slow or stalled clients).
    body_timeout_s: float = 30.0

    @classmethod
    def from_env(cls) -> "ServerSettings":
        """From the environment; a bad value raises SettingsError (a UserError and a ValueError) naming it."""
        env = settings()
        budget_gb = env.serve_memory_gb
        return cls(
            api_key=env.api_key,
            owner_key=env.owner_key,
            max_body_bytes=int(env.serve_max_body_mb * MB),
            max_upload_bytes=int(env.serve_max_upload_mb * MB),
            memory_budget_bytes=int(budget_gb * 1024 * MB) if budget_gb else None,
            max_batch_size=env.serve_max_batch,
            default_max_tokens=env.serve_default_max_tokens,
        )

    @property
    def keys_set(self) -> bool:
        return bool(self.api_key or self.owner_key)
