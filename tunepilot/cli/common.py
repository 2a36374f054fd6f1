"""What every CLI command shares: the one error boundary, `--json` output, and exit codes.

User mistakes become a one-line message on stderr and exit code 2 (1 for failures of the work
itself); only bugs show a traceback.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import typer

from tunepilot.core.errors import is_user_error, one_line

USER_ERROR_EXIT = 2


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
    except Exception as exc:
        if not is_user_error(exc):
            raise
        fail(one_line(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)
