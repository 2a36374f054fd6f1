"""Grounded answers with citations: question -> condense -> retrieve -> engine -> citation guard.

`answer()` returns an `Answer` whose `to_dict()` is the `tunepilot ask --json` shape of
ARCHITECTURE.md (`answer`, `citations`, `engine`, `grounded`, plus `notices`, `nearest_sources` and
`standalone_question` for people who want to see why). `stream_answer()` yields text pieces as the
engine produces them, then the final `Answer`, whose text is authoritative (the guard may have
dropped or renumbered citations after the pieces were shown).

Grounding is decided here, the same way for every engine:
* before any engine runs, one retrieved passage must support the question: most of the question's
  content terms (or another spelling of them from the bilingual glossary) occur in the passage
  and its heading, a heading that names the question's subject counting extra, and a cross-encoder
  score, when the search re-ranked, must not say the passage is unrelated; otherwise the answer
  says plainly (in the question's language) that the docs do not cover it and lists the nearest
  sources, citing nothing;
* after the engine, the citation guard drops citations whose chunk does not support the sentence,
  attaches the supporting chunk to uncited sentences, and an answer left with no supported
  citation is treated as not covered too;
* citations are renumbered 1..n in order of first appearance.

An LLM engine that is unreachable, slow or misconfigured never fails the question: the answer comes
from the extractive engine and says so.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

from assistant.citations import Embed, cosine, guard, renumber
from assistant.condense import condense
from assistant.engines import EngineUnavailable, Passage, get_engine
from assistant.engines.extractive import ExtractiveEngine, coverage, question_terms
from assistant.engines.prompts import NOT_COVERED
from assistant.question_input import error_lines, prepare_question
from tunepilot.core.errors import UserError
from tunepilot.core.language import content_terms, detect_lang

MAX_QUESTION_CHARS = 1000
RETRIEVE_K = 8
CONTEXT_PASSAGES = 4
COVERAGE_THRESHOLD = 0.5
# A passage whose heading names the question's subject is about it: heading coverage adds this
# fraction on top of the passage's own coverage.
HEADING_BONUS = 0.25
# Cross-encoder scores are logits; below this probability the reranker says "unrelated" and the
# lexical overlap is taken for coincidence, above RERANK_SUPPORTS it vouches for a passage whose
# wording differs from the question's.
RERANK_UNRELATED = 0.1
RERANK_SUPPORTS = 0.5
RERANK_MIN_COVERAGE = 0.3
# A question often carries context the answer passage does not repeat ("I *uploaded* a *test set*
# and the Chinese is garbled" vs. a section on encodings). A passage covering less than
# COVERAGE_THRESHOLD but at least WEAK_COVERAGE still supports the question when what it shares
# includes a telling word: one that occurs in at most RARE_SHARE of the collection's chunks
# (乱码 / garbled), not just words every page has.
WEAK_COVERAGE = 0.3
RARE_SHARE = 0.02

IDENTIFIER = re.compile(r"[a-z0-9][_.][a-z0-9]|\d")

Rarity = Callable[[list[str]], dict]
# MiniLM cosine between a question and its best passage: off-topic questions measured 0.15-0.24 on
# the shipped corpus, in-domain ones 0.25-0.70 (bench/assistant.py prints the figures).
SEMANTIC_FLOOR = 0.2

Retriever = Callable[..., list]


class AssistantError(UserError):
    """A question the assistant cannot take as given (empty, wrong engine); the message says the fix."""


@dataclass
class Citation:
    n: int
    source: str
    heading: str
    text: str


@dataclass
class Answer:
    answer: str
    citations: list[Citation]
    engine: str
    grounded: bool
    standalone_question: str = ""
    lang: str = "en"
    notices: list[str] = field(default_factory=list)
    nearest_sources: list[dict] = field(default_factory=list)
    guard: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "answer": self.answer,
            "citations": [asdict(c) for c in self.citations],
            "engine": self.engine,
            "grounded": self.grounded,
            "notices": list(self.notices),
            "nearest_sources": list(self.nearest_sources),
            "standalone_question": self.standalone_question,
        }


_MESSAGES = {
    "empty": "the question is empty: type a question, e.g. tunepilot ask \"What LoRA rank should I use?\"",
    "trimmed": {
        "en": "Your question was {n} characters long; only the first {max} were used.",
        "zh": "问题共 {n} 个字符，只使用了前 {max} 个字符。",
    },
    "fallback": {
        "en": "The {engine} engine is unavailable ({reason}); this answer comes from the extractive engine.",
        "zh": "{engine} 引擎不可用（{reason}），以下回答由抽取式引擎给出。",
    },
    "not_covered": {
        "en": "The tunepilot documentation does not cover this question, so I will not guess.",
        "zh": "tunepilot 的文档没有涵盖这个问题，我不做猜测。",
    },
    "nearest": {"en": "The nearest sources are:", "zh": "最接近的资料是："},
    "nothing": {"en": "The documentation index returned nothing for it.", "zh": "文档索引中没有找到相关内容。"},
    "unsupported": {
        "en": "The {engine} engine's answer was not supported by the retrieved documents.",
        "zh": "{engine} 引擎的回答没有得到检索文档的支持。",
    },
    "other_language": {
        "en": "The documentation has this only in Chinese; quoting it as written.",
        "zh": "文档中只有英文资料，以下按原文引用。",
    },
}


def _msg(key: str, lang: str, **kw) -> str:
    return _MESSAGES[key][lang if lang in ("en", "zh") else "en"].format(**kw)


def check_question(question: str | None, notices: list[str]) -> str:
    """The question to answer: stripped; empty -> AssistantError; only code, only a link or a long
    pasted log -> the question and error lines in it (assistant.question_input), with a notice;
    still too long -> trimmed with a notice."""
    q = (question or "").strip()
    if not q:
        raise AssistantError(_MESSAGES["empty"])
    q = prepare_question(q, notices)
    if len(q) > MAX_QUESTION_CHARS:
        notices.append(_msg("trimmed", detect_lang(q), n=len(q), max=MAX_QUESTION_CHARS))
        q = q[:MAX_QUESTION_CHARS].rstrip()
    return q


def _hit_field(hit, name: str, default=None):
    if isinstance(hit, dict):
        return hit.get(name, default)
    return getattr(hit, name, default)


_EMBED_CACHE: dict[tuple[str, str], list[float]] = {}
_EMBED_CACHE_MAX = 4096


def default_embed(texts):
    """The knowledge index's embedder (already loaded by the search), as `texts -> vectors`.
    Passages come back question after question, so their vectors are kept (bounded, per model)."""
    from knowledge.embeddings import get_embedder

    embedder = get_embedder()
    texts = list(texts)
    missing = list(dict.fromkeys(t for t in texts if (embedder.name, t) not in _EMBED_CACHE))
    if missing:
        if len(_EMBED_CACHE) + len(missing) > _EMBED_CACHE_MAX:
            _EMBED_CACHE.clear()
        for text, vector in zip(missing, embedder.embed(missing)):
            _EMBED_CACHE[(embedder.name, text)] = vector
    return [_EMBED_CACHE[(embedder.name, t)] for t in texts]


def default_search(query: str, k: int = RETRIEVE_K, collection: str = "default") -> list:
    """The product's retriever: hybrid search over the knowledge index."""
    from knowledge.retrieval import search

    return search(query, k=k, collection=collection)


def retrieve(query: str, lang: str, collection: str = "default", retriever: Retriever | None = None,
             k: int = RETRIEVE_K) -> list[Passage]:
    """Search the index and number the passages, preferring chunks in the question's language."""
    hits = list((retriever or default_search)(query, k=k, collection=collection))
    # Stable: within each language group the retriever's ranking is kept.
    hits.sort(key=lambda h: 0 if (_hit_field(h, "lang") or detect_lang(_hit_field(h, "text", ""))) == lang else 1)
    passages = []
    for i, hit in enumerate(hits[:CONTEXT_PASSAGES], start=1):
        passages.append(Passage(
            n=i, source=str(_hit_field(hit, "source", "")), heading=str(_hit_field(hit, "heading", "") or ""),
            text=str(_hit_field(hit, "text", "")), lang=str(_hit_field(hit, "lang", "") or ""),
            score=float(_hit_field(hit, "score", 0.0) or 0.0),
            rerank_score=_hit_field(hit, "rerank_score"),
        ))
    return passages


def passage_support(question: str, passage: Passage) -> float:
    """How well one passage supports the question, in [0, 1]: coverage of the passage with its
    heading, plus a bonus when the heading itself names the question's subject."""
    terms = question_terms(question)
    body = coverage(terms, passage.heading + "\n" + passage.text)
    heading = coverage(terms, passage.heading) if passage.heading else 0.0
    return min(1.0, body + HEADING_BONUS * heading)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


def _supported(question: str, passage: Passage, rarity: Rarity | None = None) -> bool:
    support = passage_support(question, passage)
    if passage.rerank_score is not None:
        relevance = _sigmoid(float(passage.rerank_score))
        if relevance < RERANK_UNRELATED:
            return False
        if relevance >= RERANK_SUPPORTS and support >= RERANK_MIN_COVERAGE:
            return True
    if support >= COVERAGE_THRESHOLD:
        return True
    if rarity is None or support < WEAK_COVERAGE:
        return False
    shared = [t for t in content_terms(question) if coverage([t], passage.heading + "\n" + passage.text)]
    share = rarity(shared) if shared else {}
    rare = [t for t in shared if 0.0 < share.get(t, 0.0) <= RARE_SHARE]
    # One shared everyday word, however rare here, is a coincidence; a shared identifier
    # ("lora_dropout") or a second shared term is not.
    return bool(rare) and (len(shared) >= 2 or any(IDENTIFIER.search(t) for t in rare))


def is_covered(question: str, passages: list[Passage], lang: str = "en", embed: Embed | None = None,
               rarity: Rarity | None = None) -> bool:
    """Do the passages carry the question's content?

    Lexical: one passage (with its heading) supports the question (`passage_support`; terms
    scattered over unrelated chunks, "Apple" in one and "price" in another, are a coincidence, not
    an answer), or covers part of it including a word rare in the collection (`rarity`: term ->
    share of chunks holding it), and the cross-encoder agrees when the search re-ranked.
    Semantic, for English questions when an embedder is given: the closest passage is not far off
    in meaning either, which catches a question that merely shares words with the docs ("What is
    the capital of France?" vs. a metrics page whose example answer is "Paris"). MiniLM is an
    English model, so Chinese questions rely on the lexical test.
    """
    if not question_terms(question) or not passages:
        return False
    if not any(_supported(question, p, rarity) for p in passages):
        return False
    if embed is not None and lang == "en":
        vectors = [list(map(float, v)) for v in embed([question] + [p.heading + "\n" + p.text for p in passages])]
        best = max(cosine(vectors[0], v) for v in vectors[1:])
        if best < SEMANTIC_FLOOR:
            return False
    return True


def _nearest(passages: list[Passage]) -> list[dict]:
    return [{"source": p.source, "heading": p.heading} for p in passages]


def not_covered_answer(lang: str, passages: list[Passage], engine: str, standalone: str,
                       notices: list[str], reason: str | None = None) -> Answer:
    lines = [_msg("not_covered", lang)]
    if reason:
        lines.append(reason)
    if passages:
        lines.append(_msg("nearest", lang))
        lines += [f"- {p.source}" + (f" › {p.heading}" if p.heading else "") for p in passages]
    else:
        lines.append(_msg("nothing", lang))
    return Answer(answer=_with_notices("\n".join(lines), notices), citations=[], engine=engine, grounded=False,
                  standalone_question=standalone, lang=lang, notices=notices, nearest_sources=_nearest(passages))


def _with_notices(text: str, notices: list[str]) -> str:
    if not notices:
        return text
    return "\n".join(f"> {n}" for n in notices) + "\n\n" + text


def finalize(text: str, passages: list[Passage], engine: str, lang: str, standalone: str,
             notices: list[str]) -> Answer:
    """Guard and renumber the engine's text; an answer without supported citations is not covered."""
    if NOT_COVERED in text or not text.strip():
        return not_covered_answer(lang, passages, engine, standalone, notices)
    by_n = {p.n: p for p in passages}
    checked = guard(text.strip(), {n: p.text for n, p in by_n.items()})
    if not checked.cited:
        return not_covered_answer(lang, passages, engine, standalone, notices,
                                  reason=_msg("unsupported", lang, engine=engine))
    body = renumber(checked.text, checked.cited)
    if lang in ("zh", "en") and all(by_n[n].lang and by_n[n].lang != lang for n in checked.cited) and engine == "extractive":
        body = _msg("other_language", lang) + "\n\n" + body
    citations = [Citation(n=i, source=by_n[old].source, heading=by_n[old].heading, text=by_n[old].text)
                 for i, old in enumerate(checked.cited, start=1)]
    return Answer(
        answer=_with_notices(body, notices), citations=citations, engine=engine, grounded=True,
        standalone_question=standalone, lang=lang, notices=notices, nearest_sources=_nearest(passages),
        guard={"dropped": checked.dropped, "added": checked.added, "unsupported": checked.unsupported},
    )


def _open_engine(name: str, options: dict, lang: str, notices: list[str]):
    try:
        return get_engine(name, **options)
    except EngineUnavailable as exc:
        notices.append(_msg("fallback", lang, engine=name, reason=str(exc)))
        return ExtractiveEngine()


def default_rarity(collection: str) -> Rarity:
    """The knowledge index's term rarity for `collection` (see `knowledge.retrieval.term_rarity`)."""
    from knowledge.retrieval import term_rarity

    return lambda terms: term_rarity(terms, collection=collection)


def stream_answer(question: str, engine: str = "extractive", history: list[dict] | None = None,
                  collection: str = "default", retriever: Retriever | None = None,
                  embed: Embed | None = None, rarity: Rarity | None = None,
                  **engine_options) -> Iterator[str | Answer]:
    """Yield answer text pieces as they are produced, then the final `Answer`."""
    notices: list[str] = []
    q = check_question(question, notices)
    lang = detect_lang(q)
    eng = _open_engine(engine, engine_options, lang, notices)
    for notice in notices:
        yield f"> {notice}\n\n"
    standalone = condense(q, history, engine=eng)
    passages = retrieve(standalone, lang, collection=collection, retriever=retriever)
    if retriever is None:  # the product path: the same embedder and index the search used
        embed = embed or default_embed
        rarity = rarity or default_rarity(collection)
    # A question about a failure is covered when the docs explain its error line, even if they do
    # not repeat the rest of the message ("my run crashes, what should I change?").
    errors = [e for e in error_lines(standalone) if e != standalone.strip()]
    if not (is_covered(standalone, passages, lang, embed, rarity)
            or (errors and is_covered("\n".join(errors), passages, lang, embed, rarity))):
        final = not_covered_answer(lang, passages, eng.name, standalone, notices)
        yield final.answer
        yield final
        return
    pieces: list[str] = []
    try:
        for piece in eng.stream(standalone, passages, lang, history):
            pieces.append(piece)
            yield piece
    except EngineUnavailable as exc:
        notice = _msg("fallback", lang, engine=eng.name, reason=str(exc))
        notices.append(notice)
        yield f"\n\n> {notice}\n\n"
        eng = ExtractiveEngine()
        pieces = []
        for piece in eng.stream(standalone, passages, lang, history):
            pieces.append(piece)
            yield piece
    yield finalize("".join(pieces), passages, eng.name, lang, standalone, notices)


def answer(question: str, engine: str = "extractive", history: list[dict] | None = None,
           collection: str = "default", retriever: Retriever | None = None, embed: Embed | None = None,
           rarity: Rarity | None = None, **engine_options) -> Answer:
    """Answer `question` from the documentation index with checked citations (see the module docstring)."""
    final = None
    for item in stream_answer(question, engine=engine, history=history, collection=collection,
                              retriever=retriever, embed=embed, rarity=rarity, **engine_options):
        if isinstance(item, Answer):
            final = item
    return final
