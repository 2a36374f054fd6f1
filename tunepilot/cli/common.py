"""What every CLI command shares: the one error boundary, `--json` output, and exit codes.

User mistakes become a one-line message on stderr and exit code 2 (1 for failures of the work
itself); only bugs show a traceback.

`--json` output is protected at the file-descriptor level: native libraries (the Rust tokenizers
print their warnings with `println!`) write to fd 1 behind Python's back, so for a `--json`
command the real stdout is set aside at start and fd 1 points at stderr; `emit_json` alone
writes to the real stdout. `Typer` (the root app's class) does this when the process starts.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import typer

from tunepilot.core.errors import is_user_error, one_line

USER_ERROR_EXIT = 2

_json_stream = None  # the real stdout, set aside by keep_stdout_for_json


def keep_stdout_for_json(argv: list[str]) -> None:
    """For a `--json` command line: keep the real stdout for `emit_json`, send everything else on fd 1 to stderr."""
    global _json_stream
    if "--json" not in argv[1:] or _json_stream is not None:
        return
    try:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
    except (OSError, ValueError):  # no real fd 1 (an embedding host): Python-level output only
        return
    _json_stream = os.fdopen(saved, "w", encoding="utf-8")


class Typer(typer.Typer):
    """The root app: protects `--json` output (see the module docstring) before any command runs."""

    def __call__(self, *args, **kwargs):
        keep_stdout_for_json(sys.argv)
        return super().__call__(*args, **kwargs)


def emit_json(data: Any) -> None:
    """One JSON document on stdout, nothing else (Chinese kept readable)."""
    out = _json_stream or sys.stdout
    out.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
    out.flush()


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
