"""The extractive engine: no language model, answers by quoting the most relevant sentences.

It cleans the top passages of Markdown (code blocks, tables and headings are not prose), splits
them into sentences, scores every sentence by how much of the question's content it covers, picks
the best few, and writes them in reading order (passages by relevance, sentences by position), each
followed by the citation marker of the passage it was taken from. Because every sentence is quoted
verbatim, every citation it emits is supported by construction; the guard still checks them.
"""

from __future__ import annotations

import re
from typing import Iterator

from assistant.engines.base import Engine, Passage
from tunepilot.core.language import (
    CJK_CHAR,
    char_bigrams,
    content_terms,
    detect_lang,
    latin_terms,
    split_sentences,
)

# Sentences addressed to an AI rather than to the reader are prompt-injection attempts, not facts.
INJECTION = re.compile(
    r"ignore (all |any )?(the )?(previous|prior|above) (instructions|rules)|disregard (the |all )?(previous|above)"
    r"|you are now|system prompt|忽略(之前|以上|前面|上述)的?(所有)?(指令|指示|说明)|你现在是",
    re.I,
)

MAX_SENTENCES = 4
ANAPHORA = re.compile(r"^(this|that|these|those|it|they|such|on those|in that case|here|then|also|both|这|那|它|此|该|上述|同样)", re.I)
RELATIVE_FLOOR = 0.5
MAX_CHARS = {"en": 700, "zh": 320}
MIN_CHARS = {"en": 25, "zh": 8}
MAX_SENTENCE_CHARS = {"en": 400, "zh": 200}


def clean_markdown(text: str) -> str:
    """Markdown -> plain prose paragraphs: drop code, tables, headings, front matter; unwrap markup."""
    text = re.sub(r"```.*?```", "\n\n", text, flags=re.S)
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        # Indented blocks are code or formulas in Markdown; tables, headings, quotes are not prose.
        indented_code = line.startswith(("    ", "\t")) and not re.match(r"\s*([-*+]|\d+[.)])\s", line)
        if indented_code or stripped.startswith(("|", "#", ">", "---")) or stripped.startswith("<!--"):
            lines.append("")
            continue
        stripped = re.sub(r"^([-*+]|\d+[.)])\s+", "", stripped)  # list bullets become sentences
        lines.append(stripped)
    prose = "\n".join(lines)
    prose = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", prose)  # links and images keep their text
    prose = re.sub(r"(\*\*|__|\*|`)", "", prose)
    # A single newline inside a paragraph is a soft wrap; blank lines and list items stay breaks.
    prose = re.sub(r"(?<![。！？.!?:：])\n(?!\n)", " ", prose)
    return prose


def term_weight(term: str) -> float:
    """Longer Chinese words say more than single characters; Latin terms weigh 1."""
    if re.match(r"[A-Za-z0-9]", term):
        return 1.0
    return min(len(term), 4) / 2.0


def coverage(question_terms: list[str], text: str) -> float:
    """Weighted share of the question's terms that occur in `text` (case-insensitive)."""
    if not question_terms:
        return 0.0
    words = latin_terms(text)  # whole words: "rice" must not match inside "matrices"
    total = sum(term_weight(t) for t in question_terms)
    found = sum(term_weight(t) for t in question_terms if (t in words if _is_latin(t) else t in text))
    return found / total


def _is_latin(term: str) -> bool:
    return bool(re.match(r"[A-Za-z0-9]", term))


class ExtractiveEngine(Engine):
    name = "extractive"
    uses_llm = False

    def __init__(self, max_sentences: int = MAX_SENTENCES, **_ignored):
        self.max_sentences = max_sentences

    def select(self, question: str, passages: list[Passage], lang: str) -> list[tuple[Passage, str]]:
        """The chosen (passage, sentence) pairs in the order they will be written."""
        q_terms = content_terms(question)
        q_grams = char_bigrams(question)
        candidates = []  # (score, passage_index, position, passage, sentence)
        # Answer in the question's language: quote other-language passages only when none match.
        same_lang = [p for p in passages if _lang_of(p) == lang]
        for p_index, passage in enumerate(passages):
            if same_lang and passage not in same_lang:
                continue
            p_lang = _lang_of(passage)
            for position, sentence in enumerate(split_sentences(clean_markdown(passage.text))):
                # One quoted sentence is one line of the answer (the guard splits at newlines).
                sentence = re.sub(r"\s*\n\s*", "" if p_lang == "zh" else " ", sentence).strip()
                if not (MIN_CHARS[p_lang] <= len(sentence) <= MAX_SENTENCE_CHARS[p_lang]):
                    continue
                if INJECTION.search(sentence) or sentence.endswith((":", "：")):
                    continue
                score = coverage(q_terms, sentence)
                if q_grams:
                    grams = char_bigrams(sentence)
                    score = 0.8 * score + 0.2 * (len(q_grams & grams) / len(q_grams))
                if score <= 0:
                    continue
                # A passage whose heading names the question's subject is about it, not just mentioning it.
                score += 0.1 * coverage(q_terms, passage.heading)
                # "QLoRA trains ..." defines; "On those machines ..." needs a sentence we did not quote.
                if _is_latin_start(sentence, q_terms):
                    score += 0.05
                if ANAPHORA.match(sentence):
                    score -= 0.15
                # Earlier passages and earlier sentences (definitions come first) win ties.
                score += 0.05 / (1 + p_index) + 0.02 / (1 + position)
                candidates.append((score, p_index, position, passage, sentence))
        candidates.sort(key=lambda c: -c[0])
        if candidates:
            # Sentences that cover less than half of what the best one covers are padding.
            floor = RELATIVE_FLOOR * candidates[0][0]
            candidates = [c for c in candidates if c[0] >= floor]
        chosen, seen_grams, used_chars = [], [], 0
        for score, p_index, position, passage, sentence in candidates:
            grams = char_bigrams(sentence) | set(sentence.lower().split())
            if any(len(grams & g) / max(1, min(len(grams), len(g))) > 0.6 for g in seen_grams):
                continue  # near-duplicate (the same fact in two chunks)
            if chosen and used_chars + len(sentence) > MAX_CHARS.get(lang, 700):
                continue
            chosen.append((score, p_index, position, passage, sentence))
            seen_grams.append(grams)
            used_chars += len(sentence)
            if len(chosen) >= self.max_sentences:
                break
        best_per_passage: dict[int, float] = {}
        for score, p_index, *_ in chosen:
            best_per_passage[p_index] = max(best_per_passage.get(p_index, 0.0), score)
        chosen.sort(key=lambda c: (-best_per_passage[c[1]], c[1], c[2]))
        return [(c[3], c[4]) for c in chosen]

    def stream(self, question: str, passages: list[Passage], lang: str,
               history: list[dict] | None = None) -> Iterator[str]:
        separator = "" if lang == "zh" else " "
        for i, (passage, sentence) in enumerate(self.select(question, passages, lang)):
            yield (separator if i else "") + cite_sentence(sentence, passage.n)


def _is_latin_start(sentence: str, q_terms: list[str]) -> bool:
    first = content_terms(sentence[:40])[:2]
    return any(t in q_terms for t in first)


def _lang_of(passage: Passage) -> str:
    return passage.lang if passage.lang in ("zh", "en") else detect_lang(passage.text)


def cite_sentence(sentence: str, n: int) -> str:
    """Append `[n]` before the sentence's closing punctuation (adding a full stop when it has none)."""
    s = sentence.rstrip()
    # A clause cut at a semicolon stands alone in the answer, so it ends like a sentence.
    if s.endswith(("；", "：")):
        s = s[:-1] + "。"
    elif s.endswith((";", ":")):
        s = s[:-1] + "."
    if s and s[-1] in "。！？；":
        return f"{s[:-1]}[{n}]{s[-1]}"
    if s and s[-1] in ".!?":
        return f"{s[:-1]} [{n}]{s[-1]}"
    return f"{s}[{n}]。" if CJK_CHAR.fullmatch(s[-1:]) else f"{s} [{n}]."
