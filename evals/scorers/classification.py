"""Classification: the reply read as a label, compared with the expected label.

Per row: 1 when the predicted label equals the expected one (case- and space-insensitive). With a
`labels` option the reply is mapped to the first listed label it contains (so "Answer: positive."
counts as `positive`), or to `<other>`. Corpus level: accuracy, per-label precision/recall/F1 and
macro-F1. The macro average runs over the `labels` option if given, else over the labels that occur
in the expected column — a free-text reply that is no label at all lowers recall but does not add
a label of its own.
"""

from __future__ import annotations

from evals.scorers.base import RowContext, Scorer
from evals.scorers.match import normalise

OTHER = "<other>"


def _norm_label(text: str) -> str:
    return " ".join(normalise(text).casefold().split()).strip(" .。!！")


class Classification(Scorer):
    name = "classification"
    description = "Label accuracy per row; accuracy, per-label precision/recall/F1 and macro-F1 per model."
    corpus_level = True
    allowed_params = ("labels",)

    def __init__(self, params=None, settings=None):
        super().__init__(params, settings)
        self.labels = [str(x) for x in self.params.get("labels", [])]

    def predict(self, output: str) -> str:
        if not self.labels:
            return _norm_label(output)
        reply = _norm_label(output)
        for label in self.labels:
            if _norm_label(label) == reply:
                return _norm_label(label)
        for label in self.labels:
            if _norm_label(label) in reply:
                return _norm_label(label)
        return OTHER

    def score(self, ctx: RowContext) -> float | None:
        return float(self.predict(ctx.output) == _norm_label(ctx.expected or ""))

    def corpus(self, contexts: list[RowContext]) -> dict | None:
        if not contexts:
            return None
        gold = [_norm_label(c.expected or "") for c in contexts]
        pred = [self.predict(c.output) for c in contexts]
        labels = [_norm_label(x) for x in self.labels] or sorted(set(gold))
        per_label = {}
        for label in labels:
            tp = sum(1 for g, p in zip(gold, pred) if g == label and p == label)
            fp = sum(1 for g, p in zip(gold, pred) if g != label and p == label)
            fn = sum(1 for g, p in zip(gold, pred) if g == label and p != label)
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / (tp + fn) if tp + fn else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
        accuracy = sum(1 for g, p in zip(gold, pred) if g == p) / len(gold)
        macro_f1 = sum(v["f1"] for v in per_label.values()) / len(per_label) if per_label else 0.0
        return {"accuracy": accuracy, "macro_f1": macro_f1, "per_label": per_label}
