"""Scorers about how the model behaved rather than what it said: latency and perplexity.

Both are lower-is-better and unbounded, so they are kept out of the weighted overall score.
Latency of a locally batched row is the batch's wall time divided by its rows (what each row cost);
for an API model it is the request's own round trip. Perplexity is exp(mean token loss) of the
expected answer teacher-forced after the prompt — it needs the model's token probabilities, so it
only applies to local models (None, with a notice, for API models).
"""

from __future__ import annotations

from evals.scorers.base import RowContext, Scorer


class Latency(Scorer):
    name = "latency"
    description = "Seconds spent generating the row (lower is better)."
    needs_expected = False
    higher_is_better = False
    bounded = False

    def score(self, ctx: RowContext) -> float | None:
        return ctx.latency_s


class Perplexity(Scorer):
    name = "perplexity"
    description = "Perplexity of the expected answer under the model (local models; lower is better)."
    higher_is_better = False
    bounded = False

    def score(self, ctx: RowContext) -> float | None:
        if ctx.provider is None or not ctx.provider.supports_perplexity or not (ctx.expected or "").strip():
            return None
        return ctx.provider.perplexity(ctx.messages, ctx.expected)
