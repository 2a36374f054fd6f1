"""The one answer to "is this the user's fault?": a `UserError`.

Every part raises a subclass of `UserError` for a mistake the person can fix (a bad config, an
unknown model, a file that is not JSON/CSV ...); its message names the problem and the fix. The
edges (the CLI's error boundary, the Streamlit pages, the job worker, the API server) catch exactly
`UserError` and show its first line; anything else is a bug and keeps its traceback.

Parts keep their own subclass (ConfigError, JobError, ...) so callers can catch one part's
errors; subclasses that used to be ValueErrors still are, so `except ValueError` keeps working.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message says how.

    `code` is a short machine-readable name (shown in `--json` error output and API errors);
    `field` is the config key, column or parameter the problem is about, when there is one.
    """

    code = "user_error"

    def __init__(self, message: str = "", *, code: str | None = None, field: str | None = None):
        super().__init__(message)
        if code:
            self.code = code
        self.field = field

    def one_line(self) -> str:
        return one_line(self)


def one_line(exc: BaseException) -> str:
    """The first line of an error's message (or its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_user_error(exc: BaseException) -> bool:
    """A user mistake: a `UserError`, or a file the user named that does not exist."""
    return isinstance(exc, (UserError, FileNotFoundError))


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""

    code = "file_not_found"
