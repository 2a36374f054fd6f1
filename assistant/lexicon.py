"""The reader's lexicon: numbers in any notation, and the patterns for methods, optimizers, paths,
GPU names, model families and their hub names, shared by `assistant.understand` (the reader) and
`assistant.slots` (its slot-name view). Text is NFKC-normalised first (`normalise`), so full-width
digits and letters ("２ｅ－４", "ＬｏＲＡ") read like ASCII.
"""

from __future__ import annotations

import re
import unicodedata


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

_DATA_EXT = r"(?:jsonl|json|csv|tsv|parquet|txt)"
_PATH_TOKEN = re.compile(rf"(?<![\w/.~-])((?:~|\.{{1,2}})?/?(?:[\w.\-\u4e00-\u9fff]+/)*[\w.\-\u4e00-\u9fff]*?[\w\-]\.{_DATA_EXT})(?![\w])", re.I)
_DIR_TOKEN = re.compile(r"(?<![\w/.~:-])((?:~|\.{1,2})?/(?:[\w.\-]+/?)+|(?:\.{1,2}/)(?:[\w.\-]+/?)+)")
_EVAL_CONTEXT = re.compile(r"(eval(?:uate)?(?:uation)?|validat(?:e|ion)|valid|dev|test|验证集?|评测集?|测试集?|评估集?)"
                           r"\W{0,3}(?:(?:on|with|using|at|set|file|用|在|是|为)\W{0,3})?$", re.I)
_OUTPUT_CONTEXT = re.compile(r"(save|saving|output|write|store|out[\s_-]*dir|保存|输出|存到|存放|写到)\W{0,12}(?:\w{0,8}\W{0,3})?$", re.I)
_DATA_CONTEXT = re.compile(r"(data|dataset|数据集?|语料|eval(?:uation)?|validation|验证集?|测试集?)\W{0,12}(?:\w{0,6}\W{0,3})?$", re.I)
_FT_ID = re.compile(r"(?<![\w])(ft:[\w.\-]+(?::[\w.\-]+)+)")
_GPU_NAME = re.compile(
    r"(?<![A-Za-z0-9_.])((?:nvidia\s*)?(?:geforce\s*)?(?:rtx\s*)?(?:"
    r"[2345]0[6-9]0(?:\s*ti)?(?:\s*super)?|a\d{2,4}g?|h\d{3}(?:\s*nvl)?|l40s?|l4|t4|v100|p100|6000\s*ada"
    r")(?:[\s-]*\d{2,3}\s*(?:gb|g)(?![a-z]))?)(?![A-Za-z0-9_])", re.I)
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


def normalise(text: str) -> str:
    # NFKC: full-width digits/letters/punctuation -> ASCII, so "２ｅ－４" and "ＬｏＲＡ" parse.
    out = unicodedata.normalize("NFKC", text)
    return out.replace("−", "-").replace("–", "-").replace("—", "-")
