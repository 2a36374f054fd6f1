"""What every CLI command shares: one-line user errors, `--json` output, and exit codes.

User mistakes become a one-line message on stderr and exit code 2 (1 for failures of the work
itself); only bugs show a traceback.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import typer

USER_ERROR_EXIT = 2


class UserError(Exception):
    """A problem the user can fix; the message says how."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    from trainer.models import ModelError
    from trainer.workspace import WorkspaceError

    return (UserError, ModelError, WorkspaceError, FileNotFoundError)


def emit_json(data: Any) -> None:
    """One JSON document on stdout, nothing else (Chinese kept readable)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = USER_ERROR_EXIT) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's user-facing exceptions into `error: ...` and an exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except _user_error_types() as exc:
        fail(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    except KeyboardInterrupt:
        fail("interrupted", code=130)
