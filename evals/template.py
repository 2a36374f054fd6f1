"""Prompt templates: `{column}` (or promptfoo/PromptLayer-style `{{ column }}`) filled from a dataset row.

Only placeholders whose inside looks like a column name are variables, so JSON examples such as
`{"a": 1}` inside a prompt stay literal text. Variables are checked against the dataset columns
before anything runs, so a typo fails in a second rather than after an hour of generation.
"""

from __future__ import annotations

import re

from evals.datasets import cell_text
from evals.errors import EvalError

# {{ name }} first (so the double form is not read as a literal brace around {name}), then {name}.
# A name has no braces, quotes, colons, commas or line breaks — which keeps JSON literals out.
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\"':,\n]+?)\s*\}\}|\{([^{}\"':,\n]+?)\}")


def variables(template: str) -> list[str]:
    """Variable names in order of first appearance."""
    names: dict[str, None] = {}
    for m in _PLACEHOLDER.finditer(template):
        names.setdefault((m.group(1) or m.group(2)).strip(), None)
    return list(names)


def check_variables(template: str, columns: list[str], what: str = "template") -> None:
    missing = [v for v in variables(template) if v not in columns]
    if missing:
        found = ", ".join(repr(c) for c in columns)
        names = ", ".join("{" + m + "}" for m in missing)
        raise EvalError(f"The {what} uses {names}, which the dataset has no column for; columns found: {found}. "
                        "Rename the placeholder or the column.")


def render(template: str, row: dict) -> str:
    """Fill every placeholder from `row` (values as text; lists/objects as JSON)."""
    return _PLACEHOLDER.sub(lambda m: cell_text(row.get((m.group(1) or m.group(2)).strip())), template)
