"""The citation guard: every `[n]` in an answer must point at a retrieved chunk that supports it.

Docs-RAG assistants are often caught citing a passage that says something else. This module checks
each sentence of an answer against the chunks it cites and keeps only the citations whose chunk
really carries the sentence's content:

* English and other Latin-script text: the share of the sentence's content words (light stemming,
  numbers kept) that occur in the chunk;
* Chinese: the share of the sentence's character bigrams that occur in the chunk (robust to word
  order and to jieba's segmentation choices);
* `support(..., embed)` can also take an embedding similarity (any `embed(texts) -> vectors`
  callable), the larger score deciding; bench/assistant.py measures that judge against the gold
  set, while the guard itself judges lexically, so its verdict does not hang on a model.

Citations to chunks that were never retrieved are dropped outright. Sentences an LLM left uncited
get the best-supporting chunk attached when the support is strong, so a small local model that
forgets the markers still produces a checkable, cited answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from tunepilot.core.language import char_bigrams, latin_terms

SUPPORT_THRESHOLD = 0.5
# Sentences with fewer judged units than this are too short to check either way ("Yes.").
MIN_UNITS_TO_JUDGE = 3

_MARKER = re.compile(r"\s*\[(\d+(?:\s*[,，]\s*\d+)*)\]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e-?\d+)?")
# A sentence ends at Western punctuation followed by space/end, at a Chinese end mark, or at a
# newline; citation markers right after the punctuation belong to the sentence before.
_SENTENCE = re.compile(
    r".*?(?:[.!?](?:\s*\[\d+(?:\s*[,，]\s*\d+)*\])*(?=\s|$)|[。！？；](?:\s*\[\d+(?:\s*[,，]\s*\d+)*\])*|\n|$)",
    re.S,
)

Embed = Callable[[Sequence[str]], Sequence[Sequence[float]]]


def _units(text: str) -> tuple[set[str], set[str]]:
    words = latin_terms(text) | set(_NUMBER.findall(text))
    return words, char_bigrams(text)


def strip_markers(text: str) -> str:
    return _MARKER.sub("", text)


def lexical_support(sentence: str, chunk_text: str) -> float:
    """Share of the sentence's words/bigrams found in the chunk, in [0, 1]."""
    s_words, s_grams = _units(strip_markers(sentence))
    total = len(s_words) + len(s_grams)
    if total == 0:
        return 0.0
    c_words, c_grams = _units(chunk_text)
    hit = len(s_words & c_words) + len(s_grams & c_grams)
    return hit / total


def judgeable(sentence: str) -> bool:
    words, grams = _units(strip_markers(sentence))
    return len(words) + len(grams) >= MIN_UNITS_TO_JUDGE


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def support(sentence: str, chunk_text: str, embed: Embed | None = None) -> float:
    """How well `chunk_text` supports `sentence`: lexical overlap, or embedding similarity if larger."""
    score = lexical_support(sentence, chunk_text)
    if embed is not None and score < SUPPORT_THRESHOLD:
        a, b = embed([strip_markers(sentence), chunk_text])
        # MiniLM cosine for a sentence vs. its source passage sits around 0.6-0.8; 0.75 maps to 0.5.
        score = max(score, cosine(a, b) * (SUPPORT_THRESHOLD / 0.75))
    return min(score, 1.0)


@dataclass
class GuardResult:
    """The answer text after the guard, plus what it changed (for metadata and the benchmark)."""

    text: str
    cited: list[int] = field(default_factory=list)  # chunk numbers in order of first appearance
    dropped: list[dict] = field(default_factory=list)  # {"sentence", "n", "support", "why"}
    added: list[dict] = field(default_factory=list)  # {"sentence", "n", "support"}
    unsupported: list[str] = field(default_factory=list)  # judged sentences left without a citation


def split_answer_sentences(text: str) -> list[str]:
    """Sentences of an answer, each with its trailing citation markers and whitespace kept."""
    out = []
    pos = 0
    while pos < len(text):
        m = _SENTENCE.match(text, pos)
        if m is None or m.end() == pos:
            out.append(text[pos:])
            break
        end = m.end()
        # Keep the whitespace that follows with the sentence so joining reproduces the text.
        while end < len(text) and text[end] in " \t":
            end += 1
        out.append(text[pos:end])
        pos = end
    return [s for s in out if s]


def _place_markers(sentence: str, numbers: list[int]) -> str:
    """Put `[n]` markers before the sentence's final punctuation, keeping its trailing whitespace."""
    body = strip_markers(sentence)
    trailing = body[len(body.rstrip()):]
    core = body.rstrip()
    if not numbers:
        return core + trailing
    markers = "".join(f"[{n}]" for n in numbers)
    if core and core[-1] in "。！？；：":
        return f"{core[:-1]}{markers}{core[-1]}{trailing}"
    if core and core[-1] in ".!?:":
        return f"{core[:-1].rstrip()} {markers}{core[-1]}{trailing}"
    return f"{core} {markers}{trailing}" if core else trailing


def guard(text: str, chunks: dict[int, str], threshold: float = SUPPORT_THRESHOLD,
          attach_missing: bool = True) -> GuardResult:
    """Check every citation in `text` against `chunks` ({n: chunk text}); drop the unsupported ones.

    Code blocks are passed through untouched: they are quoted, not claims to check.
    """
    result = GuardResult(text="")
    parts = re.split(r"(```.*?```)", text, flags=re.S)
    rebuilt = []
    for i, part in enumerate(parts):
        if i % 2 == 1:
            rebuilt.append(part)
            continue
        rebuilt.append("".join(_guard_sentence(s, chunks, threshold, attach_missing, result)
                               for s in split_answer_sentences(part)))
    result.text = "".join(rebuilt)
    return result


def _guard_sentence(sentence: str, chunks: dict[int, str], threshold: float, attach_missing: bool,
                    result: GuardResult) -> str:
    bare = strip_markers(sentence).strip()
    cited = [int(n) for group in _MARKER.findall(sentence) for n in re.split(r"\s*[,，]\s*", group)]
    if not bare:
        return sentence if not cited else strip_markers(sentence)
    can_judge = judgeable(bare)
    kept: list[int] = []
    for n in dict.fromkeys(cited):
        if n not in chunks:
            result.dropped.append({"sentence": bare, "n": n, "support": 0.0, "why": "not a retrieved chunk"})
            continue
        score = support(bare, chunks[n]) if can_judge else 1.0
        if score >= threshold:
            kept.append(n)
        else:
            result.dropped.append({"sentence": bare, "n": n, "support": round(score, 3),
                                   "why": "chunk does not support the sentence"})
    if not kept and can_judge and attach_missing and chunks:
        scored = sorted(((support(bare, t), n) for n, t in chunks.items()), key=lambda x: (-x[0], x[1]))
        best_score, best_n = scored[0]
        if best_score >= threshold:
            kept.append(best_n)
            result.added.append({"sentence": bare, "n": best_n, "support": round(best_score, 3)})
    if not kept and can_judge:
        result.unsupported.append(bare)
    for n in kept:
        if n not in result.cited:
            result.cited.append(n)
    return _place_markers(sentence, kept)


def renumber(text: str, order: list[int]) -> str:
    """Rewrite `[old]` markers to 1..len(order) following `order` (first appearance)."""
    mapping = {old: new for new, old in enumerate(order, start=1)}

    def repl(m: re.Match) -> str:
        nums = [mapping[int(n)] for n in re.split(r"\s*[,，]\s*", m.group(1)) if int(n) in mapping]
        return "".join(f"[{n}]" for n in nums)

    return re.sub(r"\[(\d+(?:\s*[,，]\s*\d+)*)\]", repl, text)
