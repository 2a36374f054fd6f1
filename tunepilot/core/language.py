"""Language detection and the BM25 tokenizer (jieba for Chinese, simple word tokens for the rest).

The embedding model is English-only, so Chinese recall rests on this tokenizer: Chinese runs are
segmented with jieba (search mode, plus a fine-tuning vocabulary so "学习率" or "梯度累积" stay one
word), everything else is lower-cased into word tokens that keep technical spellings whole
("2e-4", "lora_alpha", "a100-80g") and also yield their parts ("lora", "alpha").
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


def has_cjk(text: str) -> bool:
    return CJK_CHAR.search(text) is not None


def detect_lang(text: str) -> str:
    """"zh" when Chinese characters carry the text, else "en" (English words in zh prose are normal)."""
    n_cjk = len(CJK_CHAR.findall(text))
    if not n_cjk:
        return "en"
    n_words = len(_LATIN_ANY.findall(text))
    return "zh" if n_cjk >= 0.5 * n_words else "en"


def query_lang(text: str) -> str:
    """A query with any Chinese character is a Chinese question."""
    return "zh" if has_cjk(text) else "en"


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


def _latin_tokens(text: str) -> list[str]:
    out: list[str] = []
    for tok in _LATIN_WORD.findall(text.lower()):
        tok = tok.strip("'")
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
    """BM25 tokens for mixed Chinese/English text."""
    tokens: list[str] = []
    pos = 0
    for match in _CJK_RUN.finditer(text):
        if match.start() > pos:
            tokens.extend(_latin_tokens(text[pos : match.start()]))
        tokens.extend(
            w for w in _segmenter().lcut_for_search(match.group()) if w not in ZH_STOPWORDS
        )
        pos = match.end()
    if pos < len(text):
        tokens.extend(_latin_tokens(text[pos:]))
    return tokens
