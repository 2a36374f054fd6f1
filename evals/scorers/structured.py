"""Structured-output scorers: json_valid (the reply parses as JSON) and json_schema (and validates).

A reply wrapped in one Markdown code fence (```json ... ```) is unwrapped first: models add fences
habitually, and the question these scorers answer is whether the payload is usable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from evals.errors import EvalError
from evals.scorers.base import RowContext, Scorer

_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


def parse_json_reply(text: str):
    """The JSON value in a reply, or raise ValueError."""
    m = _FENCE.match(text or "")
    body = m.group(1) if m else (text or "")
    return json.loads(body)


class JsonValid(Scorer):
    name = "json_valid"
    description = "1 if the reply is valid JSON (one surrounding code fence allowed), else 0."
    needs_expected = False

    def score(self, ctx: RowContext) -> float | None:
        try:
            parse_json_reply(ctx.output)
        except ValueError:
            return 0.0
        return 1.0


class JsonSchema(Scorer):
    name = "json_schema"
    description = "1 if the reply is JSON that validates against the `schema` option (an object or a file path)."
    needs_expected = False
    allowed_params = ("schema",)

    def __init__(self, params=None, settings=None):
        super().__init__(params, settings)
        import jsonschema

        schema = self.params.get("schema")
        if schema is None:
            raise EvalError("json_schema needs a `schema` option (a JSON Schema object or a .json file path) in the eval config.")
        if isinstance(schema, str):
            path = Path(schema).expanduser()
            if not path.exists():
                raise EvalError(f"json_schema: schema file {path} does not exist.")
            try:
                schema = json.loads(path.read_text(encoding="utf-8-sig"))
            except json.JSONDecodeError as exc:
                raise EvalError(f"json_schema: {path} is not valid JSON ({exc.msg}).") from None
        try:
            validator_cls = jsonschema.validators.validator_for(schema)
            validator_cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise EvalError(f"json_schema: the schema is invalid ({exc.message}).") from None
        self._validator = validator_cls(schema)

    def score(self, ctx: RowContext) -> float | None:
        try:
            value = parse_json_reply(ctx.output)
        except ValueError:
            return 0.0
        return 0.0 if any(True for _ in self._validator.iter_errors(value)) else 1.0
