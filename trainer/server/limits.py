"""Request size and pace limits as a plain ASGI middleware: bodies over the limit get 413, bodies that
stop arriving get 408, both in OpenAI's error shape.

Both the declared `Content-Length` and the bytes actually received are checked, so a chunked
upload without a length cannot slip past. File uploads get a larger limit than JSON bodies. A
client that sends its body slower than `body_timeout_s` per read (a stalled or "slowloris"
client) is answered 408 and the request's worker is freed; only reads of the body are timed,
not the app's later wait for a disconnect while it streams a reply.
Written as raw ASGI (not BaseHTTPMiddleware) so streamed responses and client disconnects pass
through untouched.
"""

from __future__ import annotations

import json

import anyio

from trainer.server.errors import error_body

UPLOAD_PATHS = ("/v1/files",)


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    pass


def _limit_text(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n} bytes"


class BodySizeLimit:
    def __init__(self, app, max_body_bytes: int, max_upload_bytes: int, body_timeout_s: float = 30.0):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.body_timeout_s = body_timeout_s

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
            return await _send_error(send, message)

        received = 0
        body_done = False
        failure: tuple[int, str, str] | None = None  # (status, code, message) once the body broke a limit
        replaced = False
        too_slow = (f"The request body did not arrive within {self.body_timeout_s:g} s; send it at once "
                    "(the server frees connections that stall).")

        async def counting_receive():
            nonlocal received, body_done, failure
            if body_done:
                return await receive()
            try:
                with anyio.fail_after(self.body_timeout_s):
                    msg = await receive()
            except TimeoutError:
                failure = (408, "request_timeout", too_slow)
                raise BodyTooSlow() from None
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                body_done = not msg.get("more_body", False)
                if received > limit:
                    failure = (413, "request_too_large", message)
                    raise BodyTooLarge()
            return msg

        async def send_failure():
            nonlocal replaced
            if not replaced:
                replaced = True
                status, code, text = failure
                await _send_error(send, text, status=status, code=code)

        async def guarded_send(msg):
            # Frameworks may turn a failed body read into their own 400; once a limit was
            # crossed, the answer is 413 (or 408) whatever the route tried to send.
            if failure is not None:
                await send_failure()
                return
            await send(msg)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except (BodyTooLarge, BodyTooSlow):
            await send_failure()


async def _send_error(send, message: str, status: int = 413, code: str = "request_too_large") -> None:
    body = json.dumps(error_body(message, "invalid_request_error", None, code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
