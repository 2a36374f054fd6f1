"""OpenAI's error JSON shape for every failure: `{"error": {"message", "type", "param", "code"}}`.

Clients such as the `openai` package turn the status code into an exception class
(400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, 409 ConflictError, ...) and show
`error.message`, so the message is written for the person reading it: what is wrong and the fix.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tunepilot.server")

# OpenAI's `type` values per status, so clients that branch on it behave as they do with OpenAI.
_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    500: "server_error",
    503: "server_error",
}


# An absolute POSIX or Windows path of two or more parts, e.g. /home/u/.tunepilot/models/x or C:\\x\\y,
# or a path inside the workspace once its root is written as $TUNEPILOT_HOME (group 1), which is kept.
_PATH = re.compile(r"(\$TUNEPILOT_HOME)?(?:[A-Za-z]:)?(?:[\\/][\w.\-~+@]+){2,}[\\/]?")
HOME_TOKEN = "$TUNEPILOT_HOME"


def redact_paths(text: str) -> str:
    """The message as a client may see it: paths inside the workspace are shown relative to
    `$TUNEPILOT_HOME` (so "checkpoint folder $TUNEPILOT_HOME/runs/ftjob-x/checkpoint-3" still names
    the folder), any other server path becomes `<server path>`: the problem, not the disk layout."""
    from tunepilot.core import workspace

    try:
        text = text.replace(str(workspace.home()), HOME_TOKEN)
    except Exception:  # noqa: BLE001 (an unusable workspace must not turn an error message into a 500)
        log.debug("workspace unusable while redacting an error message", exc_info=True)
    return _PATH.sub(lambda m: m.group(0) if m.group(1) else "<server path>", text)


class APIError(Exception):
    """Raised by route code; rendered as OpenAI's error JSON with the given status."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPE_FOR_STATUS.get(status, "invalid_request_error")


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None,
                   type: str | None = None, headers: dict | None = None) -> JSONResponse:
    kind = type or _TYPE_FOR_STATUS.get(status, "invalid_request_error")
    return JSONResponse(error_body(message, kind, param, code), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None, str]:
    """The first problem of a rejected body as one line, plus the parameter it concerns."""
    errors = exc.errors()
    if not errors:
        return "The request body is invalid.", None, "invalid_request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return (f"The request body is not valid JSON ({detail}); send a JSON object with "
                "Content-Type: application/json."), None, "invalid_json"
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    param = ".".join(loc) or None
    if first.get("type") == "missing":
        return f"Missing required parameter: {param!r}.", param, "missing_required_parameter"
    more = f" ({len(errors) - 1} more problem(s) in the body)" if len(errors) > 1 else ""
    where = f"Invalid value for {param!r}: " if param else "Invalid request body: "
    return f"{where}{first.get('msg', 'invalid')}.{more}", param, "invalid_value"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError):
        return error_response(exc.status, exc.message, param=exc.param, code=exc.code, type=exc.type)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        # OpenAI answers malformed or invalid bodies with 400, not FastAPI's 422.
        message, param, code = _validation_message(exc)
        return error_response(400, message, param=param, code=code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            message = f"Unknown request URL: {request.method} {request.url.path}. See the API list at /docs."
            return error_response(404, message, code="unknown_url")
        if exc.status_code == 405:
            return error_response(405, f"Method {request.method} is not allowed on {request.url.path}.",
                                  code="method_not_allowed")
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        log.exception("unhandled error in a request")
        return error_response(500, f"The server failed to handle the request ({type(exc).__name__}: "
                                   f"{redact_paths(str(exc))}); the server log has the details.",
                              code="internal_error")
