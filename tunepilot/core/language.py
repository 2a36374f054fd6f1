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

import functools
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
# A number with a unit written on it ("24G", "17.1gb", "1024px"); units map to one spelling so
# "24G", "24 GB" and "24gb" meet in one token.
_NUM_UNIT = re.compile(r"([0-9]+(?:\.[0-9]+)?)(gb|gib|g|mb|mib|m|k|b|px|x|w|ms|s)")
_UNITS = {"gb": "gb", "gib": "gb", "g": "gb", "mb": "mb", "mib": "mb", "m": "m", "k": "k", "b": "b",
          "px": "px", "x": "x", "w": "w", "ms": "ms", "s": "s"}
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # "1,024" is one number

# Bump whenever `tokenize` changes: BM25 snapshots (and hash-embedded collections) store its
# output, and an index built by another version must be rebuilt rather than searched.
TOKENIZER_VERSION = "2"

# Sentence ends: Western punctuation followed by space, or Chinese full-width ends (no space needed).
# A sentence may also start with a lower-case identifier ("n_epochs: default 4.").
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9`*_\u4e00-\u9fff]|[a-z][a-z0-9]*_[a-z0-9_]+\b)|(?<=[。！？；])|\n{2,}")

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
    等 等等 多大 多长 多久 多高 多远 几个 设多大 设多少""".split()
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
    toks = _latin_words(_THOUSANDS.sub("", text))
    for i, tok in enumerate(toks):
        whole = _NUMBER.fullmatch(tok) or _NUM_UNIT.fullmatch(tok)  # "17.1gb" stays one number
        parts = [] if whole else [p for p in _PART_SPLIT.split(tok) if p]
        if len(parts) > 1:
            out.append(tok)
            out.extend(_norm(p) for p in parts)
            out.extend(t for p in parts for t in _number_forms(p))
        else:
            out.append(_norm(tok))
            out.extend(_number_forms(tok))
            # "24 GB", "1024 px": the number and its unit as one token too
            if _NUMBER.fullmatch(tok) and i + 1 < len(toks) and toks[i + 1] in _UNITS:
                out.append(tok + _UNITS[toks[i + 1]])
    return [t for t in out if t and t not in EN_STOPWORDS]


def _number_forms(tok: str) -> list[str]:
    """Extra spellings of a number token: "24g" -> "24gb", "24"; "0.0001" -> "1e-4"."""
    unit = _NUM_UNIT.fullmatch(tok)
    if unit:
        canon = unit.group(1) + _UNITS[unit.group(2)]
        return [canon, unit.group(1)] if canon != tok else [unit.group(1)]
    if _NUMBER.fullmatch(tok):
        try:
            value = float(tok)
        except ValueError:
            return []
        # Small rates are written both ways ("1e-4" and "0.0001"); meet at the e-notation.
        if 0 < value < 0.01 or "e" in tok:
            mantissa, exponent = f"{value:e}".split("e")
            canon = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
            return [canon] if canon != tok else []
    return []


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


def stem(word: str) -> str:
    """The stemmed form content terms use ("adapters" -> "adapter", "training" -> "train")."""
    return _stem(_norm(word))


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


def number_terms(text: str) -> list[str]:
    """The numbers a text asks about, one canonical token each ("24G" -> "24gb", "0.0001" ->
    "1e-4", "1,024" -> "1024"): `content_terms` leaves numbers out, but "what is 1e-4" or "VRAM at
    1024 px" is about them. Each is a `tokenize` token of any text that writes the same number."""
    out: dict[str, None] = {}
    for word in _latin_words(_THOUSANDS.sub("", text)):
        if len(word) < 2 or not any(c.isdigit() for c in word) or not (_NUMBER.fullmatch(word) or _NUM_UNIT.fullmatch(word)):
            continue
        forms = _number_forms(word)
        out.setdefault(forms[0] if forms and not forms[0].replace(".", "").isdigit() else word, None)
    return list(out)


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


# --------------------------------------------------------------------------- bilingual glossary

# One concept per line: Chinese spellings = English spellings. Retrieval expands a question with the
# other spellings of every concept it names (学习率 -> learning rate, lr; VRAM -> 显存), so a
# Chinese question finds English passages and a paraphrase finds the docs' wording; the coverage
# gate counts a term as present when any spelling of its concept is. General vocabulary of
# fine-tuning and of software docs, not a list fitted to particular questions.
GLOSSARY = """
微调 = fine-tuning, fine-tune, finetune
全量微调, 全参数微调, 全量训练 = full fine-tuning, full fine-tune
参数高效微调, 高效微调, 少量参数微调 = parameter-efficient fine-tuning, peft
提示工程, 提示词工程 = prompt engineering
提示词, 提示 = prompt
检索增强生成, 检索增强 = retrieval-augmented generation, rag
学习率 = learning rate, learning_rate, lr
学习率调度, 调度器 = learning rate schedule, scheduler
预热, 热身 = warmup
梯度累积 = gradient accumulation
梯度检查点 = gradient checkpointing
检查点 = checkpoint
梯度裁剪 = gradient clipping
混合精度 = mixed precision
半精度 = half precision, fp16
精度 = precision
显存 = vram, gpu memory
内存 = memory, ram
优化器 = optimizer
分页优化器 = paged optimizer
量化 = quantization, quantize
双重量化 = double quantization
过拟合 = overfitting, overfit
欠拟合, 不拟合 = underfitting, underfit
验证集 = validation set, validation
训练集 = training set
测试集 = test set
数据集 = dataset
去重 = deduplication, duplicates
数据清洗, 清洗 = cleaning
对话模板, 聊天模板 = chat template
打包 = packing
填充 = padding
填充符 = pad token
截断 = truncation
序列长度, 最大长度 = sequence length, max_seq_length
批大小, 批量大小, 批次大小, 并行数量 = batch size, batch_size
有效批大小 = effective batch size
轮, 轮数, 循环次数, 纪元 = epoch, epochs, n_epochs
步数, 总步数 = steps, total steps
重复次数 = repeats, repeat
权重衰减 = weight decay
丢弃率 = dropout
秩 = rank
低秩 = low-rank
适配器 = adapter
合并 = merge, merging
基座模型, 基础模型, 底模, 基模 = base model
灾难性遗忘, 遗忘 = catastrophic forgetting, forgetting
损失 = loss
损失不下降 = loss not decreasing, flat loss
奖励模型 = reward model
偏好 = preference
直接偏好优化 = direct preference optimization, dpo
人类反馈 = human feedback
强化学习 = reinforcement learning
指令微调 = instruction tuning
监督微调, 有监督微调 = supervised fine-tuning, sft
分布式训练 = distributed training
数据并行 = data parallel
模型并行 = model parallel
张量并行 = tensor parallel
流水线并行 = pipeline parallel
卸载 = offload
推理 = inference
训练 = training, train
吞吐量 = throughput
延迟 = latency
评测, 评估 = evaluation, evaluate
指标 = metric, metrics
裁判模型 = judge model, llm-as-a-judge
困惑度 = perplexity
准确率 = accuracy
召回率 = recall
角色扮演 = role-play, persona
人设 = persona
大模型, 大语言模型 = large language model, llm
语言模型 = language model
多模态 = multimodal
视觉语言模型 = vision-language model
文生图 = text-to-image
扩散模型 = diffusion model
触发词 = trigger word
网络维度 = network dim, network_dim
采样 = sampling, sample
样图 = sample images
标注, 打标 = captions, labeling
描述, 图片描述 = caption
图像描述 = image captioning
分辨率 = resolution
文件夹, 目录 = folder, directory
输出目录 = output_dir, output folder
配置文件 = config file, configuration file
配置 = config, configuration
分词器 = tokenizer
词表 = vocabulary
显卡 = gpu, graphics card
算力 = compute
多卡 = multi-gpu, several gpus
单卡 = single gpu, one gpu
集群 = cluster
带宽 = bandwidth
服务器 = server
部署 = deploy, deployment, serving
上传 = upload
下载 = download
乱码 = garbled, mojibake
编码 = encoding
中文 = chinese
英文 = english
默认, 默认值 = default
参数 = parameter, parameters
超参数 = hyperparameter, hyperparameters
权重 = weights
模型 = model
开源 = open source, open-source
闭源 = closed
成本 = cost
价格, 费用 = price, pricing
错误, 报错 = error
缓存 = cache, caching
会话 = session
状态 = state
会话状态 = session state, session_state
页面 = page
多页面 = multipage, multi-page
侧边栏 = sidebar
按钮 = button
控件, 组件 = widget, component
表单 = form
图表 = chart
表格 = table, dataframe
主题 = theme
字体 = font
布局 = layout
登录 = login, sign-in, log in
退出登录 = logout
密码 = password
身份验证, 认证 = authentication
命令行 = command line, cli
环境变量 = environment variable
端口 = port
链接, 网址 = url, link
安装 = install
版本 = version
依赖 = dependency, dependencies
虚拟环境 = virtual environment
测试 = test, testing
脚本 = script
聊天 = chat
消息 = message
流式 = streaming, stream
文件 = file
图片, 图像 = image, images
视频 = video
超时 = timeout
回调 = callback
重新运行 = rerun
并行 = parallel
定时, 每隔 = every, interval
格式 = format
速度 = speed
内存占用, 显存占用 = memory usage
收敛 = convergence, converge
仪表盘, 看板 = dashboard
边框 = border
卡片 = card
颜色 = color, colour
标题 = title, heading
图标 = icon
浏览器 = browser
标签页 = tab, tabs
品牌 = brand
样式 = style, css
库 = library
数据库 = database
连接 = connection, connect
接口 = api, endpoint
请求 = request
响应 = response
日志 = log, logs
警告 = warning
输入 = input
输出 = output
选项 = option, options
下拉框, 下拉菜单 = dropdown, selectbox
滑块 = slider
复选框 = checkbox
排序 = sort, sorting
筛选, 过滤 = filter
搜索 = search
导航 = navigation
用户 = user
权限 = permission, permissions
密钥 = secret, key
安全 = security
文档 = documentation, docs
示例, 例子 = example
模板 = template
插件, 扩展 = plugin, extension
运行 = run
启动 = start, launch
重启 = restart
刷新 = refresh
更新 = update
删除 = delete
保存 = save
加载 = load
导入 = import
导出 = export
宽度 = width
高度 = height
对齐 = align, alignment
间距 = spacing, padding
容器 = container
网格 = grid
弹窗, 对话框 = dialog, modal
进度条 = progress bar
异步 = async
线程 = thread
并发 = concurrent, concurrency
性能 = performance
优化 = optimization, optimize
数据 = data
过期, 过期时间, 有效期 = expire, expiry, ttl
时间 = time
名字, 名称 = name
行, 行数 = lines, rows
主程序, 主文件, 入口 = main, entrypoint
代码 = code
应用, 应用程序 = app, application
程序 = program
命令 = command
查看 = view, show, inspect
提交 = submit
范围 = range
区别, 差别, 不同 = difference
原因 = cause, reason
例如 = example
步骤 = steps
方法 = method
大小 = size
数量 = number, count
比例 = ratio
速率 = rate
"""

_glossary_cache: tuple[list[tuple[tuple[str, ...], tuple[str, ...]]], re.Pattern, dict[str, int]] | None = None


def _glossary():
    global _glossary_cache
    if _glossary_cache is None:
        concepts = []
        for line in GLOSSARY.strip().splitlines():
            zh, en = line.split("=", 1)
            concepts.append((tuple(t.strip() for t in zh.split(",") if t.strip()),
                             tuple(t.strip().lower() for t in en.split(",") if t.strip())))
        by_en = {term: i for i, (_, ens) in enumerate(concepts) for term in ens}
        # Whole words only ("rank" must not fire inside "ranking"), longest spelling first.
        names = sorted(by_en, key=len, reverse=True)
        pattern = re.compile(r"(?<![a-z0-9_])(" + "|".join(re.escape(n) for n in names) + r")(?![a-z0-9_])")
        _glossary_cache = (concepts, pattern, by_en)
    return _glossary_cache


def concepts_in(text: str) -> list[int]:
    """Glossary concepts that `text` names (either language), in first-mention order."""
    concepts, pattern, by_en = _glossary()
    found: dict[int, None] = {}
    lowered = text.lower()
    for m in pattern.finditer(lowered):
        found.setdefault(by_en[m.group(1)], None)
    if has_cjk(text):
        for i, (zhs, _) in enumerate(concepts):
            if any(z in text for z in zhs):
                found.setdefault(i, None)
    return list(found)


def spellings(concept: int) -> tuple[str, ...]:
    zhs, ens = _glossary()[0][concept]
    return zhs + ens


def expansions(text: str) -> list[str]:
    """The other spellings (translations and synonyms) of the glossary concepts `text` names,
    without those it already uses: what query expansion adds."""
    lowered = text.lower()
    out: dict[str, None] = {}
    for concept in concepts_in(text):
        for term in spellings(concept):
            if term.lower() not in lowered:
                out.setdefault(term, None)
    return list(out)


@functools.lru_cache(maxsize=4096)
def term_spellings(term: str) -> frozenset[str]:
    """`term` and every other spelling of the glossary concepts it belongs to (for coverage)."""
    out = {term}
    concepts, _, by_en = _glossary()
    if term in by_en:
        out.update(spellings(by_en[term]))
    for zhs, ens in concepts:
        if term in zhs:
            out.update(zhs + ens)
    if len(out) == 1 and has_cjk(term):
        # A word jieba kept whole ("几轮", "测试集里") still names the concepts inside it.
        for zhs, ens in concepts:
            if any(z in term for z in zhs):
                out.update(ens)
    return frozenset(out)
