"""Request size limits as a plain ASGI middleware: bodies over the limit get 413 in OpenAI's shape.

Both the declared `Content-Length` and the bytes actually received are checked, so a chunked
upload without a length cannot slip past. File uploads get a larger limit than JSON bodies.
Written as raw ASGI (not BaseHTTPMiddleware) so streamed responses and client disconnects pass
through untouched.
"""

from __future__ import annotations

import json

from trainer.server.errors import error_body

UPLOAD_PATHS = ("/v1/files",)


class BodyTooLarge(Exception):
    pass


def _limit_text(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n} bytes"


class BodySizeLimit:
    def __init__(self, app, max_body_bytes: int, max_upload_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    def _limit_for(self, path: str) -> tuple[int, str]:
        if path.rstrip("/") in UPLOAD_PATHS:
            return self.max_upload_bytes, "TUNEPILOT_SERVE_MAX_UPLOAD_MB (or `tunepilot serve --max-upload-mb`)"
        return self.max_body_bytes, "TUNEPILOT_SERVE_MAX_BODY_MB (or `tunepilot serve --max-body-mb`)"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, setting = self._limit_for(scope.get("path", ""))
        message = (f"Request body is larger than the server's limit of {_limit_text(limit)}; "
                   f"send less, or raise the limit with {setting}.")

        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _send_413(send, message)

        received = 0
        exceeded = False
        replaced = False

        async def counting_receive():
            nonlocal received, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge()
            return msg

        async def guarded_send(msg):
            # Frameworks may turn a failed body read into their own 400; once the limit was
            # crossed, the answer is 413 whatever the route tried to send.
            nonlocal replaced
            if exceeded:
                if not replaced:
                    replaced = True
                    await _send_413(send, message)
                return
            await send(msg)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not replaced:
                await _send_413(send, message)


async def _send_413(send, message: str) -> None:
    body = json.dumps(error_body(message, "invalid_request_error", None, "request_too_large")).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
