"""The tunepilot workspace: every piece of state lives under one folder, `$TUNEPILOT_HOME`.

Default is `.tunepilot/` in the current directory. Tests point the variable at a temp dir.
Other modules ask this one for their paths instead of building them, so the layout is in one place.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from tunepilot.core.errors import UserError
from tunepilot.core.settings import settings


class WorkspaceError(UserError, RuntimeError):
    """The workspace folder cannot be used (not writable, not a folder)."""


def home() -> Path:
    """The workspace root, created on first use; raises WorkspaceError with the fix if unusable."""
    root = Path(settings().home).expanduser().resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
        # A per-process name: several processes (CLI, UI, job workers) probe the same folder at once.
        probe = root / f".write-probe-{os.getpid()}-{threading.get_ident()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise WorkspaceError(
            f"TUNEPILOT_HOME={root} is not writable ({exc.strerror or exc}); "
            "set TUNEPILOT_HOME to a folder you can write to."
        ) from None
    return root


def subdir(name: str) -> Path:
    """A named folder under the workspace (models, runs, index, evals, files ...), created on demand."""
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    return subdir("models")


def runs_dir() -> Path:
    return subdir("runs")


def index_dir() -> Path:
    return subdir("index")


def evals_dir() -> Path:
    return subdir("evals")


def files_dir() -> Path:
    return subdir("files")


def jobs_db_path() -> Path:
    return home() / "jobs.sqlite"
