"""The one exception type the evals library raises for problems the user can fix.

The message names the problem and the fix on its first line; the CLI prints it as `error: ...`
(exit code 2) and the Streamlit page shows it with `st.error`, never as a traceback.
"""

from __future__ import annotations

from tunepilot.core.errors import UserError


class EvalError(UserError, ValueError):
    """A dataset, config, template, scorer or provider problem, worded so the user can fix it."""
