"""Show the library's user-facing errors as one `st.error` line instead of a traceback.

Every part raises its own error type for user mistakes (a bad config, an unknown model, a file that
is not JSON/CSV ...); pages wrap library calls in `shown_as_error()` so the person sees the one-line
message that names the fix, and the rest of the page keeps working.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from assistant.cli_common import UserError
from trainer.models import ModelError
from trainer.workspace import WorkspaceError


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the person can fix this".

    ValueError covers the parts' own types, which all subclass it: ConfigError, JobError,
    MergeError, EvalError, KnowledgeError.
    """
    return (UserError, ModelError, WorkspaceError, ValueError, FileNotFoundError)


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
