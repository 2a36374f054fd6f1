"""Language plumbing for the assistant: zh/en detection, sentence splitting and content terms.

The answer engines, the citation guard, question condensing and the slot parser all need to agree
on what a "sentence" and a "content term" are, so the rules live here once. Chinese text is cut
with jieba for terms and compared with character bigrams for support, because Chinese has no
spaces and a paraphrase often reorders words but keeps most two-character pieces.
"""

from __future__ import annotations

import re
from functools import lru_cache

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.+\-]*")

# Sentence ends: Western punctuation followed by space, or Chinese full-width ends (no space needed).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9`*_\u4e00-\u9fff])|(?<=[。！？；])|\n{2,}")

EN_STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with without from into onto over under
    about as is are was were be been being am do does did doing done have has had having can could
    should would will shall may might must i me my we our you your he she it its they them their this
    that these those there here what which who whom whose when where why how than too very so such
    not no nor only own same just also any all both each few more most other some again further once
    up down out off s t don ll ve re d m o y use using used get gets got make makes made want need
    tell please thanks thank explain mean means one two much many way ways work works something thing
    things let lets know good best better well really does doesn isn aren kind vs versus like etc""".split()
)

ZH_STOPWORDS = frozenset(
    """的 了 是 在 和 与 及 或 吗 呢 吧 啊 呀 么 嘛 我 你 他 她 它 我们 你们 他们 这 那 这个 那个 这些 那些
    什么 怎么 怎样 如何 为什么 哪 哪个 哪些 多少 几 一个 一些 有 没有 要 需要 应该 可以 能 能够 会 用 使用
    对 把 被 让 给 从 到 也 都 就 还 又 很 更 最 吗 请 请问 一下 时候 时 上 中 下 里 个 该 该怎么 怎么办
    以及 如果 因为 所以 但是 而 并 并且 其 之 为 于 等 等等 呢？ 吗？ ， 。 ？ ！ ： ；""".split()
)


def is_cjk(ch: str) -> bool:
    return bool(_CJK.match(ch))


def detect_lang(text: str) -> str:
    """'zh' when the text has a meaningful share of Chinese characters, else 'en'.

    Counting CJK characters against Latin words (not characters) keeps mixed questions such as
    "LoRA 的学习率是多少" Chinese: their few ASCII words are usually product names.
    """
    cjk = len(_CJK.findall(text))
    words = len(_LATIN_WORD.findall(text))
    if cjk == 0:
        return "en"
    return "zh" if cjk >= max(2, words) else "en"


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences (both languages); empty pieces are dropped."""
    pieces = _SENTENCE_END.split(text)
    return [p.strip() for p in pieces if p and p.strip()]


def _stem(word: str) -> str:
    """A light English stemmer: enough to match 'adapters'/'adapter', 'training'/'train'."""
    w = word.lower()
    for suffix in ("ings", "ing", "ies", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            if suffix == "ies":
                return w[: -3] + "y"
            return w[: -len(suffix)]
    return w


@lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def content_terms(text: str) -> list[str]:
    """Lower-cased content terms: stemmed English words and jieba-cut Chinese words, stopwords removed.

    Order is kept and duplicates are removed, so callers can weight by position if they wish.
    """
    terms: list[str] = []
    for word in _LATIN_WORD.findall(text):
        w = word.strip(".-+").lower()
        if len(w) < 2 or w in EN_STOPWORDS:
            continue
        terms.append(_stem(w))
    cjk_runs = re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+", text)
    if cjk_runs:
        jieba = _jieba()
        for run in cjk_runs:
            for word in jieba.lcut(run):
                if word in ZH_STOPWORDS or not word.strip():
                    continue
                if len(word) == 1 and word in "的了是在和与吗呢吧啊么我你他她它这那有要会用对把被给从到也都就还又很更最请":
                    continue
                terms.append(word)
    seen: set[str] = set()
    unique = []
    for t in terms:
        if t not in seen:
            seen.add(t)
            unique.append(t)
    return unique


def char_bigrams(text: str) -> set[str]:
    """Chinese character bigrams (single characters for one-character runs)."""
    grams: set[str] = set()
    for run in re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+", text):
        if len(run) == 1:
            grams.add(run)
        grams.update(run[i : i + 2] for i in range(len(run) - 1))
    return grams


def latin_terms(text: str) -> set[str]:
    """Stemmed English content words of a text (for support checks in either language)."""
    out = set()
    for word in _LATIN_WORD.findall(text):
        w = word.strip(".-+").lower()
        if len(w) >= 2 and w not in EN_STOPWORDS:
            out.add(_stem(w))
    return out
