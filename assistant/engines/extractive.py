"""The extractive engine: no language model, answers by quoting the most relevant sentences.

It cleans the top passages of Markdown (code blocks and headings are not prose; table rows become
"first cell: column value; ..." sentences, since tables hold many of the figures), splits them into
sentences and scores every sentence by how much of the question's content it covers. Composition:

* lead with the sentence that answers: for "how many / what value / default / 多少 / 默认" questions
  a sentence carrying a number (or the word "default") ranks higher, so the asked-for value comes
  first;
* stay on the question's focus: a further sentence must carry most of the question's subject terms
  (not its generic words like "default" or "recommended") that the lead carries, or a subject term
  the lead lacks, so an answer about default epochs does not end with a batch-size sentence;
* keep one section together: further sentences come from the lead's passage, in document order;
  another passage contributes only a sentence that covers the whole focus and scores close to the
  lead.

Each sentence is followed by the citation marker of the passage it was taken from. Because every
sentence is quoted verbatim, every citation it emits is supported by construction; the guard still
checks them.
"""

from __future__ import annotations

import math
import re
from typing import Iterator

from assistant.engines.base import Engine, Passage
from tunepilot.core.language import (
    CJK_CHAR,
    char_bigrams,
    content_terms,
    detect_lang,
    latin_terms,
    number_terms,
    split_sentences,
    stem,
    term_spellings,
    tokenize,
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
# What a question asks for, beyond its subject.
ASKS_VALUE = re.compile(
    r"\bhow (many|much|long|big|large|high|low|fast|often)\b|\bwhat (value|number|size|rate|percentage|ratio)\b"
    r"|\bdefaults?\b|多少|几[个轮步张次]?|多大|多长|多久|多高|数值|取值|默认|设为|设成", re.I)
ASKS_DEFAULT = re.compile(r"\bdefaults?\b|默认", re.I)
HAS_NUMBER = re.compile(r"\d")
HAS_DEFAULT = re.compile(r"\bdefaults?\b|\bby default\b|默认", re.I)
VALUE_BONUS = 0.15
# Words that say what is asked about the subject, not what the subject is: a sentence sharing only
# these with the question ("the default batch size ...") is not about the question's subject.
GENERIC_TERMS = frozenset("""default value typical recommend recommended usual common number set setting good right
choose pick start range amount typically usually normally suggest suggested ideal optimal size value
默认 默认值 推荐 一般 通常 设置 设 设为 取值 建议 合适 选择 多少 数值 大小 常用 最好
fine-tun fine-tune finetun train model 微调 训练 模型 大模型""".split())  # every page of these docs is about these
SAME_SECTION_FOCUS = 0.5  # share of the lead's focus a sentence of the lead's passage must carry
OTHER_SECTION_SCORE = 0.8  # and a sentence of another passage must carry all of it and score this close
CONTINUATION = 2  # sentences right after the lead in its paragraph belong to its answer
NEW_ITEM = re.compile(r"^[\w.\-]+\s*[:：]")  # "batch_size: ..." starts another item, not a continuation


_ONLY_LINKS = re.compile(r"(\s*(?:[-*+|,·]\s*)?!?\[[^\]]*\]\([^)]*\)\s*)+")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_sentences(rows: list[str]) -> list[str]:
    """Markdown table rows as sentences: "first cell: header2 cell2; header3 cell3." The header row
    names the columns, the separator row is skipped."""
    if len(rows) < 2 or not re.fullmatch(r"[\s|:\-]+", rows[1]):
        return []
    header = _cells(rows[0])
    out = []
    for row in rows[2:]:
        cells = _cells(row)
        if not cells or not any(cells):
            continue
        rest = [f"{h} {c}".strip() if h else c for h, c in zip(header[1:], cells[1:]) if c]
        zh = bool(CJK_CHAR.search(row))
        if rest:
            out.append(f"{cells[0]}{'：' if zh else ': '}{('；' if zh else '; ').join(rest)}{'。' if zh else '.'}")
    return out


ITEM = "\u2063"  # invisible separator: marks where a list item starts (see `_sentences`)


def clean_markdown(text: str, mark_items: bool = False) -> str:
    """Markdown -> plain prose paragraphs: drop code, headings, front matter; tables become one
    sentence per row; unwrap markup. `mark_items` starts each list item with ITEM."""
    text = re.sub(r"```.*?```", "\n\n", text, flags=re.S)
    lines: list[str] = []
    table: list[str] = []

    def flush_table():
        if table:
            lines.append("")
            lines.extend(f"{row}\n" for row in _table_sentences(table))
            lines.append("")
            table.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            table.append(stripped)
            continue
        flush_table()
        # Indented blocks are code or formulas in Markdown; headings and quotes are not prose.
        indented_code = line.startswith(("    ", "\t")) and not re.match(r"\s*([-*+]|\d+[.)])\s", line)
        if indented_code or stripped.startswith(("#", ">", "---")) or stripped.startswith("<!--"):
            lines.append("")
            continue
        bullet = re.match(r"([-*+]|\d+[.)])\s+", stripped)
        stripped = stripped[bullet.end():] if bullet else stripped
        # A line that is only links (a table of contents, "see also") names places, not facts.
        if _ONLY_LINKS.fullmatch(stripped):
            lines.append("")
            continue
        if bullet:  # each list item is its own paragraph: items are not one run-on sentence
            lines.append("")
            stripped = ITEM + stripped if mark_items else stripped
        lines.append(stripped)
    flush_table()
    prose = "\n".join(lines)
    prose = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", prose)  # links and images keep their text
    prose = re.sub(r"(\*\*|__|\*|`)", "", prose)
    # A single newline inside a paragraph is a soft wrap; blank lines and list items stay breaks.
    prose = re.sub(r"(?<![。！？.!?:：\n])\n(?!\n)", " ", prose)
    return prose


def term_weight(term: str) -> float:
    """Longer Chinese words say more than single characters; Latin terms weigh 1."""
    if re.match(r"[A-Za-z0-9]", term):
        return 1.0
    return min(len(term), 4) / 2.0


def _present(term: str, text: str, words: set[str]) -> bool:
    """Is `term`, or another spelling of its glossary concept (学习率 / learning rate), in the
    text? Latin spellings match whole stemmed words ("rice" is not in "matrices"), Chinese ones
    as substrings."""
    for spelling in term_spellings(term):
        if CJK_CHAR.match(spelling):
            if spelling in text:
                return True
        elif _is_latin(spelling):
            stems = content_terms(spelling) or [spelling.lower()]
            if all(t in words for t in stems):
                return True
            # "lora_alpha" is there when the text speaks of LoRA's alpha in other spelling.
            parts = [stem(x) for x in re.split(r"[._\-]", spelling.lower()) if len(x) > 1]
            if len(parts) > 1 and all(x in words for x in parts):
                return True
    return False


def coverage(question_terms: list[str], text: str, weights: dict[str, float] | None = None) -> float:
    """Weighted share of the question's terms that occur in `text`, in any spelling or language;
    number terms ("1e-4", "24gb") match any spelling of the same number. `weights` replaces the
    default per-term weight (`term_weight`)."""
    if not question_terms:
        return 0.0
    words = latin_terms(text)
    # "config_file.toml" in the text also says "config" and "file".
    words |= {stem(part) for w in words if not w[:1].isdigit() for part in re.split(r"[._\-]", w) if len(part) > 1}
    numbers = set(tokenize(text)) if any(t[:1].isdigit() for t in question_terms) else set()
    weight = weights.get if weights is not None else (lambda t, _=None: term_weight(t))
    total = sum(weight(t, 1.0) for t in question_terms)
    found = sum(weight(t, 1.0) for t in question_terms
                if (t in numbers if t[:1].isdigit() else _present(t, text, words)))
    return found / total if total else 0.0


def distinctiveness(terms: list[str], sentences: list[str]) -> dict[str, float]:
    """Per-term weight for ranking these sentences: `term_weight` times an inverse sentence
    frequency, so a word nearly every sentence has ("训练" in fine-tuning docs) counts less than the
    one only the answer has ("几轮" / n_epochs)."""
    n = len(sentences)
    out = {}
    for t in terms:
        df = sum(1 for s in sentences if coverage([t], s))
        out[t] = term_weight(t) * (1.0 + math.log((n + 1) / (df + 1)))
    return out


def question_terms(question: str) -> list[str]:
    """What a question asks about: its content terms plus the numbers it names."""
    return content_terms(question) + number_terms(question)


def _is_latin(term: str) -> bool:
    return bool(re.match(r"[A-Za-z0-9]", term))


def focus_terms(question_terms: list[str]) -> list[str]:
    """The question's subject: its content terms without the generic "what is asked" words."""
    focus = [t for t in question_terms if t not in GENERIC_TERMS]
    return focus or list(question_terms)


class ExtractiveEngine(Engine):
    name = "extractive"
    uses_llm = False

    def __init__(self, max_sentences: int = MAX_SENTENCES, **_ignored):
        self.max_sentences = max_sentences

    def select(self, question: str, passages: list[Passage], lang: str) -> list[tuple[Passage, str]]:
        """The chosen (passage, sentence) pairs in the order they will be written."""
        q_terms = question_terms(question)
        q_grams = char_bigrams(question)
        asks_value = bool(ASKS_VALUE.search(question))
        asks_default = bool(ASKS_DEFAULT.search(question))
        candidates = []  # (score, passage_index, position, passage, sentence, paragraph)
        # Answer in the question's language: quote other-language passages only when none match.
        same_lang = [p for p in passages if _lang_of(p) == lang]
        pool = []  # (p_index, passage, position, paragraph, sentence) worth scoring
        for p_index, passage in enumerate(passages):
            if same_lang and passage not in same_lang:
                continue
            p_lang = _lang_of(passage)
            for position, (block, sentence) in enumerate(_sentences(passage.text)):
                # One quoted sentence is one line of the answer (the guard splits at newlines).
                sentence = re.sub(r"\s*\n\s*", "" if p_lang == "zh" else " ", sentence).strip()
                # A short line with a number ("n_epochs: default 4.") is a value, not a fragment.
                shortest = MIN_CHARS[p_lang] // 2 if HAS_NUMBER.search(sentence) else MIN_CHARS[p_lang]
                if not (shortest <= len(sentence) <= MAX_SENTENCE_CHARS[p_lang]):
                    continue
                if INJECTION.search(sentence) or sentence.endswith((":", "：")):
                    continue
                pool.append((p_index, passage, position, block, sentence))
        weights = distinctiveness(q_terms, [c[4] for c in pool])
        for p_index, passage, position, block, sentence in pool:
            score = coverage(q_terms, sentence, weights)
            if q_grams:
                grams = char_bigrams(sentence)
                # Character pairs catch words jieba cut differently; terms already count them.
                score = 0.9 * score + 0.1 * (len(q_grams & grams) / len(q_grams))
            if score <= 0:
                continue
            # A passage whose heading names the question's subject is about it, not just mentioning it.
            score += 0.1 * coverage(q_terms, passage.heading)
            # The asked-for value: a number (or "default") in the sentence answers "how many".
            if asks_value and HAS_NUMBER.search(sentence):
                score += VALUE_BONUS
            if asks_default and HAS_DEFAULT.search(sentence):
                score += VALUE_BONUS / 2
            # "QLoRA trains ..." defines; "On those machines ..." needs a sentence we did not quote.
            if _is_latin_start(sentence, q_terms):
                score += 0.05
            if ANAPHORA.match(sentence):
                score -= 0.15
            # Earlier passages and earlier sentences (definitions come first) win ties.
            score += 0.05 / (1 + p_index) + 0.02 / (1 + position)
            candidates.append((score, p_index, position, passage, sentence, block))
        if not candidates:
            return []
        candidates.sort(key=lambda c: -c[0])
        focus = focus_terms(q_terms)
        # A sentence sharing only the generic words ("default ...") answers another question.
        lead = next((c for c in candidates if coverage(focus, c[4])), candidates[0])
        candidates = [lead] + [c for c in candidates if c is not lead]
        # Sentences that cover less than half of what the best one covers are padding.
        floor = RELATIVE_FLOOR * lead[0]
        lead_focus = [t for t in focus if coverage([t], lead[4])] or focus
        telling = min(weights.get(t, 0.0) for t in lead_focus)
        chosen, seen_grams, used_chars = [lead], [_grams(lead[4])], len(lead[4])
        for cand in sorted(candidates[1:], key=lambda c: not _continues(c, lead)):
            score, p_index, position, passage, sentence, block = cand
            if len(chosen) >= self.max_sentences:
                break
            on_focus = coverage(lead_focus, sentence)
            # Or it names a part of the subject the lead left out ("Does QLoRA need CUDA?": the
            # lead defines QLoRA, the next sentence says it needs CUDA).
            # The added term must be as telling as the lead's (not "训练" in every sentence).
            adds = any(t not in lead_focus and weights.get(t, 0.0) >= telling and coverage([t], sentence) for t in focus)
            if _continues(cand, lead) and (on_focus or adds or not NEW_ITEM.match(sentence)):
                pass  # the rest of the lead's paragraph or list item ("...; try 0.02 to 0.2")
            elif score < floor:
                continue
            elif p_index == lead[1]:
                if on_focus < SAME_SECTION_FOCUS and not adds:
                    continue
            elif score < OTHER_SECTION_SCORE * lead[0] or not (on_focus >= 1.0 or (adds and on_focus >= SAME_SECTION_FOCUS)):
                continue
            grams = _grams(sentence)
            if any(len(grams & g) / max(1, min(len(grams), len(g))) > 0.6 for g in seen_grams):
                continue  # near-duplicate (the same fact in two chunks)
            if used_chars + len(sentence) > MAX_CHARS.get(_lang_of(passage), 700):
                continue
            chosen.append(cand)
            seen_grams.append(grams)
            used_chars += len(sentence)
        # The lead first; then the rest of its section in document order; then other sections.
        rest = sorted(chosen[1:], key=lambda c: (c[1] != lead[1], c[1], c[2]))
        return [(c[3], c[4]) for c in [lead] + rest]

    def stream(self, question: str, passages: list[Passage], lang: str,
               history: list[dict] | None = None) -> Iterator[str]:
        for i, (passage, sentence) in enumerate(self.select(question, passages, lang)):
            # Chinese sentences run on; an English one (quoted for a Chinese question) needs a space.
            separator = "" if _lang_of(passage) == "zh" else " "
            yield (separator if i else "") + cite_sentence(sentence, passage.n)


def _sentences(text: str) -> list[tuple[int, str]]:
    """(paragraph number, sentence) of a passage's prose, in order. A list item's first sentence
    carries the list's lead-in ("Use st.App for: custom REST endpoints ..."): the item alone
    would not say what it is an item of."""
    out = []
    lead_in = ""
    for block, paragraph in enumerate(re.split(r"\n\s*\n", clean_markdown(text, mark_items=True))):
        paragraph = paragraph.strip()
        is_item = paragraph.startswith(ITEM)
        sentences = split_sentences(paragraph.replace(ITEM, ""))
        if not sentences:
            continue
        if is_item and lead_in:
            sentences[0] = f"{lead_in} {sentences[0]}"
        elif not is_item:
            last = sentences[-1]
            lead_in = last if last.endswith((":", "：")) and len(last) <= 120 else ""
        out.extend((block, sentence) for sentence in sentences)
    return out


def _continues(cand: tuple, lead: tuple) -> bool:
    """Is `cand` a later sentence of the lead's paragraph (the same list item or table row)?"""
    return cand[1] == lead[1] and cand[5] == lead[5] and lead[2] < cand[2] <= lead[2] + CONTINUATION


def _grams(sentence: str) -> set[str]:
    return char_bigrams(sentence) | set(sentence.lower().split())


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
