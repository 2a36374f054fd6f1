"""tool_call: 1 if the reply calls the row's `expected_tool_call` (name and arguments), else 0.

Rows and replies are read by `evals.tools`; a row without an `expected_tool_call` cell is not scored
(None), never counted as a miss.
"""

from __future__ import annotations

from evals.errors import EvalError
from evals.scorers.base import RowContext, Scorer
from evals.tools import NO_CELL, call_matches, expected_call, reply_calls, row_tools


class ToolCall(Scorer):
    name = "tool_call"
    description = ("1 if the reply's first tool call has the expected_tool_call's name and arguments (all equal, "
                   "or with match: subset the expected ones), or makes no call when null is expected.")
    needs_expected = False
    allowed_params = ("match",)

    def __init__(self, params=None, settings=None):
        super().__init__(params, settings)
        self.match = self.params.get("match", "exact")
        if self.match not in ("exact", "subset"):
            raise EvalError(f"tool_call: match is {self.match!r}; use exact or subset.")

    def score(self, ctx: RowContext) -> float | None:
        expected = expected_call(ctx.row, 0)
        if expected is NO_CELL:
            return None
        calls = reply_calls(ctx.output, row_tools(ctx.row, 0, ctx.messages))
        return 1.0 if call_matches(expected, calls, subset=self.match == "subset") else 0.0
