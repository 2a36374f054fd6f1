"""The deterministic slot parser: a fine-tuning request in Chinese or English -> config slots.

"用 LoRA 在单卡 3090 上微调 qwen2.5 7b，数据 ./data/zh.jsonl，3 轮，学习率 2×10^-4" and
"fine-tune llama 3 8b on data/train.jsonl with QLoRA, lr 1e-5, batch size 4 on a 24G card" both
become the same kind of `Slots`. Everything is regular expressions over a normalised copy of the
text (NFKC folds full-width digits and punctuation), so it runs without any model and its
behaviour is exact and testable. Each slot keeps the words it was read from, for explanations.

Slot names (also the keys of the benchmark's gold file): base_model, method, dataset_path,
eval_path, output_dir, epochs, learning_rate, batch_size, gradient_accumulation_steps, lora_r,
lora_alpha, max_seq_length, optimizer, gpu, device_memory_gb, device, openai_style.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field


@dataclass
class Slots:
    values: dict = field(default_factory=dict)  # slot -> value
    evidence: dict = field(default_factory=dict)  # slot -> the words it was read from
    methods_mentioned: list[str] = field(default_factory=list)  # every method named (for conflicts)

    def set(self, name: str, value, evidence: str) -> None:
        if name not in self.values and value is not None:
            self.values[name] = value
            self.evidence[name] = evidence.strip()


# ------------------------------------------------------------------------------- numbers

_CN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def cn_number(text: str) -> int | None:
    """Small Chinese numerals: 三 -> 3, 十 -> 10, 十二 -> 12, 二十 -> 20, 三十二 -> 32."""
    if not text or any(ch not in _CN_DIGITS and ch != "十" for ch in text):
        return None
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_CN_DIGITS.get(tens, 1) if tens else 1) * 10 + (_CN_DIGITS.get(ones, 0) if ones else 0)
    value = 0
    for ch in text:
        value = value * 10 + _CN_DIGITS[ch]
    return value


_EN_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
               "ten": 10, "twelve": 12, "sixteen": 16, "twenty": 20, "thirty-two": 32, "sixty-four": 64}
_NUM = r"(\d+(?:\.\d+)?|[零一二两三四五六七八九十]+|(?<![a-z])(?:" + "|".join(sorted(_EN_NUMBERS, key=len, reverse=True)) + r")(?![a-z]))"


def _to_number(token: str) -> float | None:
    try:
        return float(token)
    except ValueError:
        if token.lower() in _EN_NUMBERS:
            return float(_EN_NUMBERS[token.lower()])
        value = cn_number(token)
        return float(value) if value is not None else None


def _int(token: str) -> int | None:
    value = _to_number(token)
    return int(value) if value is not None and value == int(value) else None


# A learning rate in any notation: 2e-4, 2E-4, 0.0002, 2×10^-4, 2*10^-4, 2x10**-4, 2·10⁻⁴, 1e-5.
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_SCI = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:[eE]\s*([-+−]?\s*\d+)|(?:[x×*·]|\\times)\s*10\s*(?:\^|\*\*)?\s*\{?\(?\s*([-−]?\s*\d+)\s*\)?\}?)(?![\w.])"
)
_PLAIN_DECIMAL = re.compile(r"(?<![\w.])(0\.\d+|\d+(?:\.\d+)?)(?![\w.])")


def parse_float(text: str) -> float | None:
    """The first number in `text` in any of the notations above (None when there is none)."""
    text = text.translate(_SUPERSCRIPT)
    m = _SCI.search(text)
    if m:
        mantissa = float(m.group(1))
        exponent = (m.group(2) or m.group(3)).replace("−", "-").replace(" ", "")
        return float(f"{mantissa}e{int(exponent)}")
    m = _PLAIN_DECIMAL.search(text)
    return float(m.group(1)) if m else None


# ------------------------------------------------------------------------------- patterns

_SET = r"\s*(?:of|is|=|:|to|at|as|set to|设为|设置为|设成|设置成|设定为|改为|为|是|用|取|等于)?\s*"
_NEGATION = re.compile(r"(not|no|instead of|rather than|without|don't|do not|不要|不用|而不是|不是|别|无需|不做)\W{0,3}\w{0,12}\W?$", re.I)

_METHODS = [
    ("qlora", re.compile(r"q[\s-]?lora|4[\s-]?bit\s*lora|4\s*位\s*(?:量化\s*)?lora|量化\s*lora", re.I)),
    ("lora", re.compile(r"(?<![a-z])lora(?![a-z])|低秩适配", re.I)),
    ("full", re.compile(r"full[\s-]*(?:parameter[s]?[\s-]*)?(?:fine[\s-]?tun\w*|finetun\w*|ft\b|training|tuning|sft)"
                        r"|all\s+(?:the\s+)?(?:parameters|weights)|全量|全参数?|全部参数|所有参数", re.I)),
    ("freeze", re.compile(r"(?<![a-z])freez(?:e|ing)(?![a-z])|(?<![a-z])frozen[\s-]+layers|冻结", re.I)),
]

_OPTIMIZERS = [
    ("paged_adamw_8bit", re.compile(r"paged[\s_-]*adam[w]?(?:[\s_-]*(?:8[\s_-]*bit|8))?", re.I)),
    ("adamw_8bit", re.compile(r"adam[w]?[\s_-]*8[\s_-]*bit|adam[w]?8bit|8[\s_-]*bit[\s_-]*adam[w]?|bnb[\s_.-]*adam", re.I)),
    ("lion_8bit", re.compile(r"lion[\s_-]*8[\s_-]*bit|8[\s_-]*bit[\s_-]*lion", re.I)),
    ("lion", re.compile(r"(?<![a-z])lion(?![a-z])", re.I)),
    ("adafactor", re.compile(r"adafactor", re.I)),
    ("sgd", re.compile(r"(?<![a-z])sgd(?![a-z])|随机梯度下降", re.I)),
    ("adamw", re.compile(r"(?<![a-z])adam[w]?(?![a-z0-9])", re.I)),
]

_LR = re.compile(r"(?:learning[\s_-]*rate|(?<![a-z])lr(?![a-z])|学习率)", re.I)
_EPOCHS = [
    re.compile(rf"{_NUM}\s*(?:个)?\s*(?:full\s+)?(?:epochs?|passes|轮|遍|个周期|个训练周期)", re.I),
    re.compile(rf"(?:epochs?|num[\s_]*epochs|训练轮数|轮数|轮次|周期数){_SET}{_NUM}", re.I),
    re.compile(rf"(?:训练|跑|train\s+for)\s*{_NUM}\s*(?:轮|遍|epochs?)", re.I),
]
_BATCH = re.compile(rf"(?:per[\s_-]*device[\s_-]*(?:train[\s_-]*)?batch[\s_-]*size|batch[\s_-]*size|(?<![a-z])bs(?![a-z])|"
                    rf"micro[\s_-]*batch(?:[\s_-]*size)?|批大小|批次大小|批量大小|批处理大小|批量|batch){_SET}{_NUM}", re.I)
_BATCH_AFTER = re.compile(rf"{_NUM}\s*(?:examples|samples|条|个样本)?\s*(?:per|每)\s*(?:batch|批)", re.I)
_ACCUM = re.compile(rf"(?:gradient[\s_-]*accumulation(?:[\s_-]*steps)?|grad(?:ient)?[\s_-]*accum\w*|accumulation[\s_-]*steps|"
                    rf"梯度累积(?:步数)?|梯度累加(?:步数)?|累积步数){_SET}{_NUM}", re.I)
_ACCUM_AFTER = re.compile(rf"(?:accumulate|累积|累加)\s*(?:gradients?\s*)?(?:over|for|across)?\s*{_NUM}\s*(?:steps|步|次)|"
                          rf"{_NUM}\s*(?:gradient[\s_-]*)?accumulation[\s_-]*steps", re.I)
_RANK = re.compile(rf"(?:lora[\s_-]*(?:rank|r)|(?<![a-z])rank|(?<![a-z_])r(?=\s*[=:：])|(?<![a-z_'])r(?=\s+\d)|秩){_SET}{_NUM}", re.I)
_RANK_AFTER = re.compile(r"(?:rank|秩)[\s-]*(\d+)|(\d+)\s*(?:的)?\s*(?:rank|秩)", re.I)
_ALPHA = re.compile(rf"(?:lora[\s_-]*alpha|(?<![a-z])alpha|α){_SET}{_NUM}", re.I)
_MAXLEN = re.compile(rf"(?:max[\s_-]*(?:seq(?:uence)?[\s_-]*)?len(?:gth)?|max[\s_-]*tokens|cutoff[\s_-]*len(?:gth)?|context[\s_-]*(?:length|window)|"
                     rf"seq(?:uence)?[\s_-]*len(?:gth)?|最大(?:序列|上下文|输入)?长度|序列长度|上下文长度|截断长度|最长){_SET}(\d+)\s*(k)?(?:\s*tokens?)?", re.I)
_MAXLEN_TOKENS = re.compile(r"(?<![\w.])(\d+)\s*(k)?\s*(?:个\s*)?tokens?(?![a-z])", re.I)

_DATA_EXT = r"(?:jsonl|json|csv|tsv|parquet|txt)"
_PATH_TOKEN = re.compile(rf"(?<![\w/.~-])((?:~|\.{{1,2}})?/?(?:[\w.\-\u4e00-\u9fff]+/)*[\w.\-\u4e00-\u9fff]*?[\w\-]\.{_DATA_EXT})(?![\w])", re.I)
_DIR_TOKEN = re.compile(r"(?<![\w/.~:-])((?:~|\.{1,2})?/(?:[\w.\-]+/?)+|(?:\.{1,2}/)(?:[\w.\-]+/?)+)")
_EVAL_CONTEXT = re.compile(r"(eval(?:uate)?(?:uation)?|validat(?:e|ion)|valid|dev|test|验证集?|评测集?|测试集?|评估集?)"
                           r"\W{0,3}(?:(?:on|with|using|at|set|file|用|在|是|为)\W{0,3})?$", re.I)
_OUTPUT_CONTEXT = re.compile(r"(save|saving|output|write|store|out[\s_-]*dir|保存|输出|存到|存放|写到)\W{0,12}(?:\w{0,8}\W{0,3})?$", re.I)
_DATA_CONTEXT = re.compile(r"(data|dataset|数据集?|语料|eval(?:uation)?|validation|验证集?|测试集?)\W{0,12}(?:\w{0,6}\W{0,3})?$", re.I)
_FT_ID = re.compile(r"(?<![\w])(ft:[\w.\-]+(?::[\w.\-]+)+)")
_HUB_ID = re.compile(r"(?<![\w/.])((?:Qwen|meta-llama|google|mistralai|THUDM|baichuan-inc|deepseek-ai|microsoft|01-ai|internlm|"
                     r"HuggingFaceTB|tiiuae|EleutherAI|openai-community)/[\w.\-]+)")

_GPU_NAME = re.compile(
    r"(?<![\w.])((?:nvidia\s*)?(?:geforce\s*)?(?:rtx\s*)?(?:"
    r"[2345]0[6-9]0(?:\s*ti)?(?:\s*super)?|a\d{2,4}g?|h\d{3}(?:\s*nvl)?|l40s?|l4|t4|v100|p100|6000\s*ada"
    r")(?:[\s-]*\d{2,3}\s*(?:gb|g)(?![a-z]))?)(?![\w])", re.I)
_MEMORY = re.compile(r"(?<![\w.])(\d{1,3})\s*(?:gb|gib|g)(?![a-z0-9])(?:\s*(?:显存|vram|memory|内存|的卡|卡|card|gpu))?", re.I)
_MEMORY_CN = re.compile(r"显存\s*(?:为|是|有|只有)?\s*(\d{1,3})\s*(?:gb|g)?", re.I)

_OPENAI_STYLE = re.compile(r"openai[\s-]*(?:style|风格|式|那样的|的)?\s*(?:default|defaults|默认|默认值|默认参数|默认配置|hyper[\s-]*parameters)|"
                           r"(?:like|same as|as)\s+openai|defaults?\s+(?:that\s+)?openai\s+uses|openai'?s\s+defaults?|"
                           r"(?:像|按照?|照着?|跟|和)\s*openai", re.I)

_CPU = re.compile(r"(?<![a-z])cpu(?![a-z])|没有\s*(?:gpu|显卡)|无\s*显卡", re.I)
_MPS = re.compile(r"(?<![a-z])mps(?![a-z])|apple\s+silicon|macbook|(?<![a-z])mac(?![a-z])|\bm[1-4]\s*(?:pro|max|ultra)?\b", re.I)


# ------------------------------------------------------------------------------- base models

_MODEL_FAMILIES = [
    # (family key, pattern with an optional version group)
    ("qwen", r"(?:qwen|通义千问|千问)[\s-]*(?:(\d(?:\.\d)?)(?![\d.]|\s*[bm](?![a-z])))?"),
    ("llama", r"llama[\s-]*(?:(\d(?:\.\d)?)(?![\d.]|\s*[bm](?![a-z])))?"),
    ("gemma", r"gemma[\s-]*(?:(\d(?:\.\d)?)(?![\d.]|\s*[bm](?![a-z])))?"),
    ("mistral", r"mistral()"),
    ("chatglm", r"chatglm[\s-]*(\d)?"),
    ("baichuan", r"baichuan[\s-]*(\d)?|百川[\s-]*(\d)?"),
    ("phi", r"phi[\s-]*(\d(?:\.\d)?)"),
    ("deepseek", r"deepseek()"),
    ("yi", r"(?<![a-z])yi()(?=[\s-]*\d+(?:\.\d+)?\s*b)"),
    ("internlm", r"internlm[\s-]*(\d(?:\.\d)?)?"),
]
_MODEL_SIZE = re.compile(r"^[\s-]*(?:instruct[\s-]*|chat[\s-]*|base[\s-]*)?(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.I)


def canonical_model(family: str, version: str | None, size: str | None) -> str:
    """A loaded name for a family, version and size; the names follow each publisher's hub naming.

    Every family and size written here is in `trainer.models.catalog` (tests/test_assistant_slots.py
    pairs them), so the memory estimate can size what the parser reads.
    """
    v = version or ""
    s = (size or "").lower()
    S = s.upper() if s.endswith("b") else s
    if family == "gemma":
        v = v or "3"
        if v == "3" and s in ("", "270m"):
            return "gemma-3-270m"  # the built-in default
        return f"google/gemma-{v}-{s}-it" if s else f"google/gemma-{v}"
    if family == "qwen":
        v = v or "2.5"
        if v.startswith("3"):
            return f"Qwen/Qwen{v}-{S}" if s else f"Qwen/Qwen{v}"
        return f"Qwen/Qwen{v}-{S}-Instruct" if s else f"Qwen/Qwen{v}"
    if family == "llama":
        v = v or ("2" if s in ("7b", "13b") else "3")  # Llama 3 comes in 8B/70B; 7B/13B means Llama 2
        if v == "3":
            return f"meta-llama/Meta-Llama-3-{S}-Instruct" if s else "meta-llama/Meta-Llama-3-8B-Instruct"
        if v.startswith("3."):
            return f"meta-llama/Llama-{v}-{S}-Instruct" if s else f"meta-llama/Llama-{v}"
        if v == "2":
            return f"meta-llama/Llama-2-{s}-chat-hf" if s else "meta-llama/Llama-2-7b-chat-hf"
        return f"llama-{v}-{s}".strip("-")
    if family == "mistral":
        return f"mistralai/Mistral-{S or '7B'}-Instruct-v0.3"
    if family == "chatglm":
        return f"THUDM/chatglm{v or '3'}-{s or '6b'}"
    if family == "baichuan":
        return f"baichuan-inc/Baichuan{v or '2'}-{S or '7B'}-Chat"
    if family == "phi":
        return f"microsoft/phi-{v}-{s}".rstrip("-")
    if family == "yi":
        return f"01-ai/Yi-1.5-{S}-Chat"
    if family == "internlm":
        return f"internlm/internlm{v or '2'}-chat-{s or '7b'}"
    return f"deepseek-ai/deepseek-llm-{s or '7b'}-chat"


def _find_model(text: str, slots: Slots) -> None:
    m = _FT_ID.search(text)
    if m:
        slots.set("base_model", m.group(1), m.group(0))
        return
    m = _HUB_ID.search(text)
    if m:
        slots.set("base_model", m.group(1).rstrip("."), m.group(0))
        return
    for d in _DIR_TOKEN.finditer(text):
        # A folder path is the base model unless the words before it say it is data or the output.
        path = d.group(1).rstrip("/,.，。")
        before = text[max(0, d.start() - 24): d.start()]
        if re.search(rf"\.{_DATA_EXT}$", path, re.I) or _OUTPUT_CONTEXT.search(before) or _DATA_CONTEXT.search(before):
            continue
        slots.set("base_model", path, path)
        return
    low = text.lower()
    for family, pattern in _MODEL_FAMILIES:
        fm = re.search(pattern, low)
        if not fm:
            continue
        version = next((g for g in fm.groups() if g), None)
        rest = low[fm.end():]
        size_m = _MODEL_SIZE.match(rest)
        size = None
        if size_m:
            size = f"{float(size_m.group(1)):g}{size_m.group(2).lower()}"
        evidence = text[fm.start(): fm.end() + (size_m.end() if size_m else 0)]
        slots.set("base_model", canonical_model(family, version, size), evidence)
        return
# ------------------------------------------------------------------------------- the parser

def _normalise(text: str) -> str:
    # NFKC: full-width digits/letters/punctuation -> ASCII, so "２ｅ－４" and "ＬｏＲＡ" parse.
    out = unicodedata.normalize("NFKC", text)
    return out.replace("−", "-").replace("–", "-").replace("—", "-")


def _not_negated(text: str, start: int) -> bool:
    return not _NEGATION.search(text[max(0, start - 24): start])


def _find_methods(text: str, slots: Slots) -> None:
    spans: list[tuple[int, int, str]] = []
    for name, pattern in _METHODS:
        for m in pattern.finditer(text):
            if any(s <= m.start() < e for s, e, _ in spans):
                continue  # "lora" inside an already found "qlora"
            if not _not_negated(text, m.start()):
                continue
            spans.append((m.start(), m.end(), name))
    spans.sort()
    for start, end, name in spans:
        if name not in slots.methods_mentioned:
            slots.methods_mentioned.append(name)
    mentioned = set(slots.methods_mentioned)
    if "qlora" in mentioned:
        mentioned.discard("lora")  # QLoRA *is* LoRA on a 4-bit base; naming both is not a conflict
    if len(mentioned) == 1:
        name = mentioned.pop()
        span = next(s for s in spans if s[2] == name)
        slots.set("method", name, text[span[0]: span[1]])
    elif not mentioned and re.search(r"(?<![\w])(?:4[\s-]?bit|nf4|4\s*位量化|4位)", text, re.I):
        slots.set("method", "qlora", "4-bit")


def _find_paths(text: str, slots: Slots) -> None:
    for m in _PATH_TOKEN.finditer(text):
        path = m.group(1)
        before = text[max(0, m.start() - 30): m.start()]
        if _EVAL_CONTEXT.search(before):
            slots.set("eval_path", path, before[-12:] + path)
        else:
            slots.set("dataset_path", path, path)
    for m in _DIR_TOKEN.finditer(text):
        before = text[max(0, m.start() - 24): m.start()]
        if _OUTPUT_CONTEXT.search(before):
            slots.set("output_dir", m.group(1).rstrip("/,.，。"), before[-10:] + m.group(1))


def _find_learning_rate(text: str, slots: Slots) -> None:
    for m in _LR.finditer(text):
        after = text[m.end(): m.end() + 28]
        value = parse_float(after) if re.match(r"^\W{0,3}(?:of|is|=|:|to|at|as|around|about|设为|设置为|设成|为|是|用|取|大约|约)?\W{0,3}\d", after, re.I) else None
        if value is None:
            before = text[max(0, m.start() - 22): m.start()]
            nums = list(_SCI.finditer(before)) or list(_PLAIN_DECIMAL.finditer(before))
            if nums and re.search(r"(的|as|for the|of|\s)\s*$", before[nums[-1].end():] + " "):
                value = parse_float(nums[-1].group(0))
        if value is not None and 0 < value < 1:
            slots.set("learning_rate", value, text[m.start(): m.end() + 16])
            return
    # No keyword: a bare small number in e-notation is a learning rate in practice ("use 1e-5").
    for m in _SCI.finditer(text):
        value = parse_float(m.group(0))
        if value is not None and 1e-8 <= value <= 1e-2:
            slots.set("learning_rate", value, m.group(0))
            return


def _find_first(patterns, text: str) -> re.Match | None:
    for p in patterns:
        m = p.search(text)
        if m:
            return m
    return None


def _find_hardware(text: str, slots: Slots) -> None:
    from trainer.planning.hardware import lookup_gpu

    for m in _GPU_NAME.finditer(text):
        gpu = lookup_gpu(m.group(1))
        if gpu is not None:
            slots.set("gpu", gpu.name, m.group(1))
            break
    gpu_span = m.span() if slots.values.get("gpu") else (-1, -1)
    if "gpu" not in slots.values:
        for mm in list(_MEMORY_CN.finditer(text)) + list(_MEMORY.finditer(text)):
            if gpu_span[0] <= mm.start() < gpu_span[1]:
                continue
            value = float(mm.group(1))
            if 2 <= value <= 200:
                slots.set("device_memory_gb", value, mm.group(0))
                break
    if _CPU.search(text):
        slots.set("device", "cpu", _CPU.search(text).group(0))
    elif "gpu" not in slots.values and _MPS.search(text):
        slots.set("device", "mps", _MPS.search(text).group(0))


def parse_slots(text: str) -> Slots:
    """Read every slot the request states; slots it does not state are simply absent."""
    t = _normalise(text)
    slots = Slots()
    _find_model(t, slots)
    _find_methods(t, slots)
    _find_paths(t, slots)
    _find_learning_rate(t, slots)

    m = _find_first(_EPOCHS, t)
    if m:
        value = _to_number(m.group(1))
        if value and 0 < value <= 1000:
            slots.set("epochs", int(value) if value == int(value) else value, m.group(0))
    m = _BATCH.search(t) or _BATCH_AFTER.search(t)
    if m and _int(m.group(1)):
        slots.set("batch_size", _int(m.group(1)), m.group(0))
    m = _ACCUM.search(t) or _ACCUM_AFTER.search(t)
    steps = _int(next(g for g in m.groups() if g)) if m else None
    if steps:
        slots.set("gradient_accumulation_steps", steps, m.group(0))
    m = _RANK.search(t)
    if m and _int(m.group(1)):
        slots.set("lora_r", _int(m.group(1)), m.group(0))
    else:
        m = _RANK_AFTER.search(t)
        if m:
            slots.set("lora_r", int(m.group(1) or m.group(2)), m.group(0))
    m = _ALPHA.search(t)
    if m and _int(m.group(1)):
        slots.set("lora_alpha", _int(m.group(1)), m.group(0))
    m = _MAXLEN.search(t) or _MAXLEN_TOKENS.search(t)
    if m:
        value = int(m.group(1)) * (1024 if m.group(2) else 1)
        if 16 <= value <= 1_048_576:
            slots.set("max_seq_length", value, m.group(0))

    for name, pattern in _OPTIMIZERS:
        om = pattern.search(t)
        if om:
            slots.set("optimizer", name, om.group(0))
            break
    _find_hardware(t, slots)
    m = _OPENAI_STYLE.search(t)
    if m:
        slots.set("openai_style", True, m.group(0))
    return slots
