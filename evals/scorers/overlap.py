"""Overlap scorers against the expected answer: ROUGE-L, BLEU and chrF, all scaled to [0, 1].

Chinese has no spaces between words, so word-level ROUGE would treat a whole sentence as one token.
ROUGE-L therefore counts each CJK character as a token and each run of other letters/digits as a
word (so mixed text works too). BLEU and chrF come from sacrebleu; BLEU uses sacrebleu's "zh"
tokenizer when the reference contains Chinese, "13a" otherwise. Per-row BLEU is sacrebleu's
smoothed sentence BLEU; the corpus BLEU over all rows is reported in the details.
"""

from __future__ import annotations

import re

from evals.scorers.base import RowContext, Scorer

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}_]+")
_HAS_CJK = re.compile(rf"[{_CJK}]")


def has_cjk(text: str) -> bool:
    return bool(_HAS_CJK.search(text or ""))


def rouge_tokens(text: str) -> list[str]:
    """CJK characters one by one, other words whole, lower-cased; punctuation dropped."""
    return _TOKEN.findall((text or "").lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l_f1(output: str, expected: str) -> float:
    hyp, ref = rouge_tokens(output), rouge_tokens(expected)
    lcs = lcs_length(hyp, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


class RougeL(Scorer):
    name = "rouge_l"
    description = "ROUGE-L F1 (longest common subsequence); characters for Chinese, words otherwise."

    def score(self, ctx: RowContext) -> float | None:
        return rouge_l_f1(ctx.output, ctx.expected or "")


def bleu_tokenizer(reference: str) -> str:
    return "zh" if has_cjk(reference) else "13a"


class Bleu(Scorer):
    name = "bleu"
    description = "sacrebleu sentence BLEU / 100 (zh tokenizer for Chinese references)."

    def score(self, ctx: RowContext) -> float | None:
        import sacrebleu

        ref = ctx.expected or ""
        return sacrebleu.sentence_bleu(ctx.output or "", [ref], tokenize=bleu_tokenizer(ref)).score / 100.0

    corpus_level = True

    def corpus(self, contexts: list[RowContext]) -> dict | None:
        import sacrebleu

        if not contexts:
            return None
        refs = [c.expected or "" for c in contexts]
        tokenize = "zh" if any(has_cjk(r) for r in refs) else "13a"
        result = sacrebleu.corpus_bleu([c.output or "" for c in contexts], [refs], tokenize=tokenize)
        return {"corpus_bleu": result.score / 100.0, "tokenize": tokenize}


class Chrf(Scorer):
    name = "chrf"
    description = "sacrebleu sentence chrF / 100 (character n-grams, language-neutral)."

    def score(self, ctx: RowContext) -> float | None:
        import sacrebleu

        return sacrebleu.sentence_chrf(ctx.output or "", [ctx.expected or ""]).score / 100.0
