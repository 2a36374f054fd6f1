"""Show the library's user-facing errors as one `st.error` line instead of a traceback.

Every part raises its own error type for user mistakes (a bad config, an unknown model, a file that
is not JSON/CSV ...); pages wrap library calls in `shown_as_error()` so the person sees the one-line
message that names the fix, and the rest of the page keeps working.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

import streamlit as st

# (module, class) pairs of the parts' user-facing errors. ValueError covers ConfigError and the
# other validation errors that subclass it.
_ERROR_CLASSES = [
    ("assistant.cli_common", "UserError"),
    ("trainer.models", "ModelError"),
    ("trainer.workspace", "WorkspaceError"),
]


@lru_cache(maxsize=1)
def user_error_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [ValueError, FileNotFoundError]
    for module_name, class_name in _ERROR_CLASSES:
        found.append(getattr(importlib.import_module(module_name), class_name))
    return tuple(found)


def one_line(exc: BaseException) -> str:
    """The first line of an error's message (or its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def shown_as_error() -> Iterator[None]:
    """Run a library call; a user mistake becomes one `st.error` line and the page goes on."""
    try:
        yield
    except user_error_types() as exc:
        st.error(one_line(exc), icon="⚠️")
