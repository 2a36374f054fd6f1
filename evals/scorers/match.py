"""String matching scorers: exact, contains, icontains, regex (1.0 on a match, else 0.0)."""

from __future__ import annotations

import re
import unicodedata

from evals.errors import EvalError
from evals.scorers.base import RowContext, Scorer


def normalise(text: str) -> str:
    """NFKC (full-width -> half-width, as Chinese IMEs often produce) and trimmed."""
    return unicodedata.normalize("NFKC", text or "").strip()


class ExactMatch(Scorer):
    name = "exact"
    description = "1 if the reply equals the expected answer (after trimming and NFKC), else 0."

    def score(self, ctx: RowContext) -> float | None:
        return float(normalise(ctx.output) == normalise(ctx.expected or ""))


class Contains(Scorer):
    name = "contains"
    description = "1 if the expected answer (or the `value` option) appears in the reply, case-sensitive."
    allowed_params = ("value",)
    needs_expected = True

    def __init__(self, params=None, settings=None):
        super().__init__(params, settings)
        if "value" in self.params:
            self.needs_expected = False

    def _needle(self, ctx: RowContext) -> str:
        return normalise(str(self.params.get("value", ctx.expected or "")))

    def score(self, ctx: RowContext) -> float | None:
        needle = self._needle(ctx)
        if not needle:
            return None  # an empty expected answer is "contained" in anything; not a meaningful score
        return float(needle in normalise(ctx.output))


class IContains(Contains):
    name = "icontains"
    description = "Like contains, ignoring case."

    def score(self, ctx: RowContext) -> float | None:
        needle = self._needle(ctx)
        if not needle:
            return None
        return float(needle.casefold() in normalise(ctx.output).casefold())


class RegexMatch(Scorer):
    name = "regex"
    description = "1 if the `pattern` option (default: the expected column as a pattern) is found in the reply."
    allowed_params = ("pattern", "flags")

    def __init__(self, params=None, settings=None):
        super().__init__(params, settings)
        self._flags = 0
        for letter in str(self.params.get("flags", "")):
            flag = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}.get(letter)
            if flag is None:
                raise EvalError(f"regex flags {self.params['flags']!r}: use letters i, m, s.")
            self._flags |= flag
        self._fixed = None
        if "pattern" in self.params:
            self.needs_expected = False
            self._fixed = self._compile(str(self.params["pattern"]))

    def _compile(self, pattern: str):
        try:
            return re.compile(pattern, self._flags)
        except re.error as exc:
            raise EvalError(f"regex pattern {pattern!r} is invalid ({exc}); fix the pattern.") from None

    def score(self, ctx: RowContext) -> float | None:
        pattern = self._fixed or self._compile(ctx.expected or "")
        return float(pattern.search(ctx.output or "") is not None)
