"""Language plumbing for every part: zh/en detection, one word segmentation, BM25 tokens, content terms.

One verdict and one segmentation, so retrieval, chunking, the coverage gate, the citation guard and
the answer all agree on what is Chinese and what the words of a text are:

* `detect_lang` is the only "is this text Chinese" rule (chunk language, retrieval weights, answer
  language): Chinese when Han characters are at least half as many as Latin words, so "LoRA 吗"
  and "LoRA 的学习率是多少" are Chinese while an English page quoting one term "秩" stays English.
* `words` is the one segmentation: Chinese runs are cut by a private jieba tokenizer that knows a
  fine-tuning vocabulary (so "学习率" or "梯度累积" stay one word), everything else is lower-cased
  into word tokens that keep technical spellings whole ("2e-4", "lora_alpha", "a100-80g").
* `tokenize` (BM25, the hash embedder) expands those words for recall: jieba search-mode sub-words
  of each Chinese word, the parts of technical spellings ("lora", "alpha"), plural folding. Its
  output is what existing indexes hold, so it must not change without rebuilding them.
* `content_terms` / `latin_terms` (the coverage gate, the extractive engine, the citation guard)
  take the same words, drop the tokenizer's stopwords plus conversational ones ("please",
  "explain", "请问"), and stem English lightly so "adapters"/"adapter" and "training"/"train"
  match. Every content term is therefore a BM25 token of the same text (stemmed for English).
* `char_bigrams` compares Chinese support by character pairs (robust to word order), and
  `split_sentences` cuts prose in both languages.

The embedding model is English-only, so Chinese recall rests on this tokenizer.
"""

from __future__ import annotations

import logging
import re
import threading

# CJK Unified Ideographs (+ extension A and compatibility ideographs): enough for zh text.
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_CHAR = re.compile(f"[{_CJK}]")
_CJK_RUN = re.compile(f"[{_CJK}]+")
_LATIN_WORD = re.compile(r"[a-z0-9]+(?:[._\-+/'][a-z0-9]+)*")
_LATIN_ANY = re.compile(r"[A-Za-z]+")
_PART_SPLIT = re.compile(r"[._\-+/']")
_NUMBER = re.compile(r"[0-9.]+(?:e[-+]?[0-9]+)?")  # "2e-4", "0.05": one token, never split

# Sentence ends: Western punctuation followed by space, or Chinese full-width ends (no space needed).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9`*_\u4e00-\u9fff])|(?<=[。！？；])|\n{2,}")

# Stopwords of the BM25 tokenizer (part of what existing indexes hold).
EN_STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does for from had has have how i if in
    into is it its me my of on or our should so than that the their them then there these they
    this those to was we were what when where which who why will with would you your about vs
    versus use using used one""".split()
)
ZH_STOPWORDS = frozenset(
    """的 了 是 在 和 与 及 或 吗 呢 吧 啊 么 么样 怎么 怎么样 怎样 如何 什么 哪些 哪个 为什么 多少
    一个 这个 那个 这些 那些 我 你 他 她 它 我们 你们 他们 有 没有 会 要 能 可以 应该 需要 就 也 都
    还 而 但 并 把 被 对 从 到 给 让 用 使用 时 时候 以及 其 之 中 上 下 个 些 请 问 吗？ 哪 该""".split()
)
# Words a question is phrased with but an answer need not contain: the coverage gate and the
# citation guard ignore them on top of the tokenizer's stopwords.
EN_QUESTION_WORDS = EN_STOPWORDS | frozenset(
    """else without onto over under being am doing done having shall may might must he she whom
    whose here too very such not no nor only own same just also any all both each few more most
    other some again further once up down out off s t don ll ve re d m o y get gets got make makes
    made want need tell please thanks thank explain mean means two much many way ways work works
    something thing things let lets know good best better well really doesn isn aren kind like
    etc""".split()
)
ZH_QUESTION_WORDS = ZH_STOPWORDS | frozenset(
    """呀 嘛 这 那 几 一些 能够 又 很 更 最 请问 一下 里 该怎么 怎么办 如果 因为 所以 但是 并且 为 于
    等 等等""".split()
)

# Words jieba's general dictionary splits but a fine-tuning reader treats as one term.
DOMAIN_WORDS = """
微调 全量微调 参数高效微调 高效微调 提示工程 检索增强生成 检索增强 学习率 学习率调度 调度器 预热 热身
梯度累积 梯度检查点 检查点 梯度裁剪 混合精度 半精度 全精度 显存 内存 优化器 分页优化器 双重量化 量化
反量化 过拟合 欠拟合 验证集 训练集 测试集 数据集 去重 数据清洗 对话模板 聊天模板 打包 序列长度
最大长度 批大小 批量大小 有效批大小 轮数 步数 总步数 权重衰减 丢弃率 秩 低秩 适配器 合并 基座模型
基础模型 灾难性遗忘 遗忘 损失 损失函数 损失不下降 奖励模型 偏好优化 直接偏好优化 人类反馈 强化学习
指令微调 监督微调 分布式训练 数据并行 模型并行 张量并行 流水线并行 卸载 推理 训练 吞吐量 延迟
评测 评估 裁判模型 困惑度 角色扮演 大模型 语言模型 多模态 视觉语言模型 文生图 扩散模型 触发词
重复次数 网络维度 采样 标注 打标 文件夹 输出目录 配置文件 分词器 词表 填充 填充符 截断 溢出
"""


# --------------------------------------------------------------------------- language


def has_cjk(text: str) -> bool:
    return CJK_CHAR.search(text) is not None


def detect_lang(text: str) -> str:
    """"zh" when Chinese characters carry the text, else "en" (English words in zh prose are normal).

    Han characters are counted against Latin words (not letters): a Chinese question's few ASCII
    words are usually product names ("LoRA 吗" is Chinese), while one quoted term in an English
    paragraph does not make it Chinese.
    """
    n_cjk = len(CJK_CHAR.findall(text))
    if not n_cjk:
        return "en"
    n_words = len(_LATIN_ANY.findall(text))
    return "zh" if n_cjk >= 0.5 * n_words else "en"


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences (both languages); empty pieces are dropped."""
    pieces = _SENTENCE_END.split(text)
    return [p.strip() for p in pieces if p and p.strip()]


# --------------------------------------------------------------------------- segmentation

_jieba_lock = threading.Lock()
_jieba = None


def _segmenter():
    """A private jieba tokenizer with the domain words (the global one is left untouched)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                seg = jieba.Tokenizer()
                seg.initialize()
                for word in DOMAIN_WORDS.split():
                    seg.add_word(word, freq=200000)
                _jieba = seg
    return _jieba


def _spans(text: str):
    """(is_chinese, piece) runs of `text` in order."""
    pos = 0
    for match in _CJK_RUN.finditer(text):
        if match.start() > pos:
            yield False, text[pos : match.start()]
        yield True, match.group()
        pos = match.end()
    if pos < len(text):
        yield False, text[pos:]


def _latin_words(text: str) -> list[str]:
    return [w for w in (tok.strip("'") for tok in _LATIN_WORD.findall(text.lower())) if w]


def words(text: str) -> list[str]:
    """The one segmentation: Latin words (technical spellings whole) and jieba's Chinese words, in order."""
    out: list[str] = []
    for chinese, piece in _spans(text):
        out.extend(_segmenter().lcut(piece) if chinese else _latin_words(piece))
    return out


# --------------------------------------------------------------------------- BM25 tokens


def _latin_tokens(text: str) -> list[str]:
    out: list[str] = []
    for tok in _latin_words(text):
        parts = [] if _NUMBER.fullmatch(tok) else [p for p in _PART_SPLIT.split(tok) if p]
        if len(parts) > 1:
            out.append(tok)
            out.extend(_norm(p) for p in parts)
        else:
            out.append(_norm(tok))
    return [t for t in out if t and t not in EN_STOPWORDS]


def _norm(tok: str) -> str:
    # Plural folding only: "optimizers" -> "optimizer", "gpus" -> "gpu"; stems would mangle names.
    if len(tok) > 3 and tok.isalpha() and tok.endswith("s") and not tok.endswith("ss"):
        return tok[:-1]
    return tok


def tokenize(text: str) -> list[str]:
    """BM25 tokens for mixed Chinese/English text: `words` expanded for recall (see the module doc)."""
    tokens: list[str] = []
    for chinese, piece in _spans(text):
        if chinese:
            # Search mode yields each precise-mode word of `words` plus its dictionary sub-words.
            tokens.extend(w for w in _segmenter().lcut_for_search(piece) if w not in ZH_STOPWORDS)
        else:
            tokens.extend(_latin_tokens(piece))
    return tokens


# --------------------------------------------------------------------------- content terms


def _stem(word: str) -> str:
    """A light English stemmer: enough to match 'adapters'/'adapter', 'training'/'train'."""
    w = word.lower()
    for suffix in ("ings", "ing", "ies", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            if suffix == "ies":
                return w[:-3] + "y"
            return w[: -len(suffix)]
    return w


def _latin_content(word: str) -> list[str]:
    """Content terms of one Latin word: a contraction or possessive keeps its head ("what's" ->
    "what"), alternatives split ("lora/qlora"), numbers and single letters carry no content."""
    head = word.split("'", 1)[0]
    out = []
    for part in head.split("/"):
        if len(part) < 2 or not part[0].isalpha() or part in EN_QUESTION_WORDS:
            continue
        # Stemmed from the BM25 form, so every content term is a stemmed `tokenize` token.
        folded = _norm(part)
        if folded not in EN_QUESTION_WORDS:
            out.append(_stem(folded))
    return out


def content_terms(text: str) -> list[str]:
    """Content terms of `text`: its `words` without stopwords, English stemmed, first occurrence kept.

    Order is kept and duplicates are removed, so callers can weight by position if they wish.
    """
    terms: list[str] = []
    for word in words(text):
        if CJK_CHAR.match(word):
            if word not in ZH_QUESTION_WORDS:
                terms.append(word)
        else:
            terms.extend(_latin_content(word))
    return list(dict.fromkeys(terms))


def latin_terms(text: str) -> set[str]:
    """Stemmed English content terms of a text (for support checks in either language)."""
    return {t for word in _latin_words(text) for t in _latin_content(word)}


def char_bigrams(text: str) -> set[str]:
    """Chinese character bigrams (single characters for one-character runs)."""
    grams: set[str] = set()
    for run in _CJK_RUN.findall(text):
        if len(run) == 1:
            grams.add(run)
        grams.update(run[i : i + 2] for i in range(len(run) - 1))
    return grams
