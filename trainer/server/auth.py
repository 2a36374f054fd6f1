"""Bearer-token checks: the optional API key for every /v1 call, the owner key for deletions.

With no key configured the API is open (it binds to 127.0.0.1 by default). With `TUNEPILOT_API_KEY`
set, requests need `Authorization: Bearer <key>`. Deleting a fine-tuned model is owner-only once any
key is set, as OpenAI lets only an organization's owners delete fine-tuned models: it needs
`TUNEPILOT_OWNER_KEY`. The owner key also passes the ordinary API-key check.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from trainer.server.errors import APIError
from trainer.server.settings import ServerSettings


class OwnerKeyError(PermissionError):
    """The presented key does not allow deleting models; the message says which key is needed."""


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _same(a: str | None, b: str | None) -> bool:
    # Constant-time comparison, so the key cannot be guessed from response timing.
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


def require_api_key(request: Request) -> None:
    """FastAPI dependency for every /v1 route."""
    settings: ServerSettings = request.app.state.settings
    if not settings.api_key:
        return
    token = bearer_token(request)
    if token is None:
        raise APIError(401, "Missing API key: send `Authorization: Bearer <key>` with the key in TUNEPILOT_API_KEY.",
                       code="missing_api_key")
    if not (_same(token, settings.api_key) or _same(token, settings.owner_key)):
        raise APIError(401, "Incorrect API key; use the value of TUNEPILOT_API_KEY the server was started with.",
                       code="invalid_api_key")


def check_owner_key(presented: str | None, api_key: str | None, owner_key: str | None) -> None:
    """Raise OwnerKeyError unless `presented` may delete models under these key settings.

    Shared by the HTTP route and `tunepilot models delete`, so both enforce the same rule.
    """
    if not (api_key or owner_key):
        return  # no keys configured: a local single-user setup, nothing to protect
    if not owner_key:
        raise OwnerKeyError("Deleting a fine-tuned model needs the owner key, but TUNEPILOT_OWNER_KEY is not set; "
                            "set it where the server (or CLI) runs and present it.")
    if not _same(presented, owner_key):
        raise OwnerKeyError("Deleting a fine-tuned model needs the owner key (TUNEPILOT_OWNER_KEY); "
                            "the key presented is not it.")


def require_owner_key(request: Request) -> None:
    settings: ServerSettings = request.app.state.settings
    try:
        check_owner_key(bearer_token(request), settings.api_key, settings.owner_key)
    except OwnerKeyError as exc:
        raise APIError(403, str(exc), code="owner_key_required") from None
