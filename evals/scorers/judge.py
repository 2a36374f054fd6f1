"""LLM-as-judge: another model grades each reply against a rubric, on a 0-10 scale (reported as 0-1).

The judge is any OpenAI-compatible chat endpoint, resolved like every other OpenAI call
(`tunepilot.core.settings.openai_endpoint`): the eval config's `judge:` section, else
TUNEPILOT_OPENAI_BASE_URL / _API_KEY / _MODEL / _TIMEOUT, else OPENAI_BASE_URL / OPENAI_API_KEY /
OPENAI_MODEL. With no endpoint configured the scorer is skipped for the run with a notice — never scored as 0.
"""

from __future__ import annotations

import re

from evals.scorers.base import RowContext, Scorer
from tunepilot.core.settings import openai_endpoint

DEFAULT_RUBRIC = ("The reply answers the question correctly and completely, agrees with the reference answer "
                  "where one is given, and contains nothing false or irrelevant.")

_JUDGE_INSTRUCTIONS = (
    "You grade a model's reply. Rubric: {rubric}\n\n"
    "Question:\n{prompt}\n\n"
    "Reference answer (may be empty):\n{expected}\n\n"
    "Reply to grade:\n{output}\n\n"
    "Give a grade from 0 (fails the rubric) to 10 (fully meets it). "
    "Answer with the line `SCORE: <number>` followed by one sentence of reasons."
)
_SCORE = re.compile(r"SCORE\s*[:：]\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


def parse_grade(text: str) -> float | None:
    """The 0-10 grade in a judge reply as a 0-1 score, or None if it gave none."""
    m = _SCORE.search(text or "") or _NUMBER.search(text or "")
    if not m:
        return None
    return max(0.0, min(10.0, float(m.group(1)))) / 10.0


class LlmJudge(Scorer):
    name = "llm_judge"
    description = "An OpenAI-compatible model grades the reply against a rubric (0-1); skipped if no judge is configured."
    needs_expected = False
    allowed_params = ("rubric",)

    def __init__(self, params=None, settings=None):
        super().__init__(params, settings)
        judge = getattr(settings, "judge", None)
        # timeout_s counts as given only when the config wrote it, so TUNEPILOT_OPENAI_TIMEOUT applies otherwise.
        endpoint = openai_endpoint(
            base_url=judge.base_url if judge else None, model=judge.model if judge else None,
            api_key=judge.api_key if judge else None,
            timeout=judge.timeout_s if judge and "timeout_s" in judge.model_fields_set else None)
        self.base_url, self.api_key, self.model = endpoint.base_url, endpoint.api_key, endpoint.model
        self.timeout_s = endpoint.timeout
        self.rubric = str(self.params.get("rubric") or DEFAULT_RUBRIC)
        self._client = None

    def unavailable_reason(self) -> str | None:
        if not self.model or not (self.base_url or self.api_key):
            return ("llm_judge skipped: no judge model configured; set `judge: {base_url, model}` in the eval config "
                    "or TUNEPILOT_OPENAI_BASE_URL and TUNEPILOT_OPENAI_MODEL")
        return None

    def _chat(self, prompt: str) -> str:
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(base_url=self.base_url, api_key=self.api_key or "not-needed",
                                  timeout=self.timeout_s, max_retries=1)
        response = self._client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=96)
        return response.choices[0].message.content or ""

    def score(self, ctx: RowContext) -> float | None:
        reply = self._chat(_JUDGE_INSTRUCTIONS.format(rubric=self.rubric, prompt=ctx.prompt,
                                                      expected=ctx.expected or "", output=ctx.output))
        grade = parse_grade(reply)
        if grade is None:
            raise ValueError(f"the judge gave no grade: {reply[:80]!r}")
        return grade
