"""Show the library's user-facing errors as one `st.error` line instead of a traceback.

Pages wrap library calls in `shown_as_error()`; what counts as the user's mistake is decided in
one place, `tunepilot.core.errors.is_user_error`, as it is for the CLI and the job worker.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from tunepilot.core.errors import is_user_error, one_line

__all__ = ["is_user_error", "one_line", "shown_as_error"]


@contextmanager
def shown_as_error() -> Iterator[None]:
    """Run a library call; a user mistake becomes one `st.error` line and the page goes on."""
    try:
        yield
    except Exception as exc:
        if not is_user_error(exc):
            raise
        st.error(one_line(exc), icon="⚠️")
