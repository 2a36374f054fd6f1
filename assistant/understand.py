"""Understand: one message of a fine-tuning request -> slots, each with the text span it came from.

The first of the planner's three steps (understand -> `assistant.plan` -> `assistant.fit`). Every
value the message states becomes a `Slot(field, value, span, text)`, where `field` is a config
field ("training.epochs") or one of the planner's own fields (`model.size`: a parameter count when
only a size such as "3B" is given; `training.effective_batch`). Nothing is dropped silently:

- values that are read but invalid ("learning rate -3", "0 epochs") are kept as given; validation
  flags them later;
- text that looks like a setting but cannot be read ("rate 5e", "epochs: lots", "warmup 100 steps",
  a YAML key the config has no place for) goes to `unread`, so the reply can name it;
- the same field given twice with different values in one message is a `conflict`.

How: key=value and YAML-ish lines are read first (tunepilot, axolotl, LLaMA-Factory and
transformers key names); then the free text, with what was already read blanked out (offsets
stay valid), by keyword-and-value patterns in English and Chinese. Text is NFKC-normalised first
(full-width digits and letters); spans index `Understanding.text`: the message as written (the
normalised copy in the rare case where normalising changed its length).
Model ids with an organisation ("NousResearch/Llama-3.2-1B") are kept verbatim; only bare family
names ("llama 3 8b") are resolved, and the slot's `note` says to what.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from assistant.lexicon import (
    _CPU,
    _DATA_CONTEXT,
    _DIR_TOKEN,
    _EN_NUMBERS,
    _EVAL_CONTEXT,
    _FT_ID,
    _GPU_NAME,
    _METHODS,
    _MODEL_FAMILIES,
    _MODEL_SIZE,
    _MPS,
    _OPENAI_STYLE,
    _OPTIMIZERS,
    _OUTPUT_CONTEXT,
    _PATH_TOKEN,
    canonical_model,
    cn_number,
    normalise,
    parse_float,
)


@dataclass
class Slot:
    field: str
    value: Any
    span: tuple[int, int]
    text: str
    note: str = ""  # e.g. how a family name was resolved

    def to_dict(self) -> dict:
        out = {"field": self.field, "value": self.value, "span": list(self.span), "text": self.text}
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Understanding:
    text: str  # the message the spans index
    slots: list[Slot] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)  # {"field", "values", "texts"}
    unread_fields: dict[str, str] = field(default_factory=dict)  # unread text -> the field it was about
    # Fields read only by implication ("LoRA rank 8" implies LoRA): they do not overwrite a draft's value.
    implied: set[str] = field(default_factory=set)
    methods_mentioned: list[str] = field(default_factory=list)
    openai_style: bool = False
    reset: bool = False

    def values(self) -> dict:
        """field -> value; where a field was given twice, the later mention."""
        return {s.field: s.value for s in self.slots}

    def slot(self, name: str) -> Slot | None:
        found = [s for s in self.slots if s.field == name]
        return found[-1] if found else None


# ------------------------------------------------------------------------------- numbers

# A number as people write it, sign included (invalid values must be read to be flagged):
# 2e-4, -3, 0.0002, 2×10^-4, 2*10^-4, 1.0e-4.
_NUMBER = re.compile(
    r"[-+]?\s?(?:\d+(?:\.\d+)?|\.\d+)"
    r"(?:\s*[eE]\s*[-+]?\s*\d+(?![\d.])|\s*(?:[x×*·]|\\times)\s*10\s*(?:\^|\*\*)?\s*[({]?\s*[-−]?\s*\d+\s*[)}]?)?"
)
_WORD_NUMBER = re.compile(r"[零一二两三四五六七八九十]+|(?<![a-z])(?:" + "|".join(sorted(_EN_NUMBERS, key=len, reverse=True)) + r")(?![a-z])", re.I)
# What may follow a number: the end, space, punctuation, a CJK character, or a unit the field allows.
_AFTER_OK = re.compile(r"(?:$|[\s,，。;；、)\]}!?！？:：\u4e00-\u9fff]|\.(?:\s|$))")
_SET = (r"\s*(?:[:=：]|(?<![a-z])(?:of|is|to|at|as|set to|equal to|around|about)(?![a-z])|设为|设置为|设成|设置成|设定为|改为|改成|"
        r"调到|调成|调为|为|是|用|取|等于|到)?\s*")
_EXPLICIT_SET = re.compile(r"^\s*(?:[:=：]|(?<![a-z])(?:is|to|of|set to)(?![a-z])|设为|设置为|设成|改为|改成|为|是)\s*", re.I)


def _number_at(text: str, pos: int, units: str = "") -> tuple[float, int, str] | None | str:
    """The number starting at `pos` (after optional spaces): (value, end, suffix) or "bad" when the
    characters there start like a number but do not read as one ("5e", "0.5e"), or None."""
    m = _NUMBER.match(text, pos)
    if m and m.group(0).strip():
        end = m.start() + len(m.group(0).rstrip())
        raw = m.group(0).replace(" ", "").replace("−", "-")
        suffix = ""
        um = re.match(rf"\s*({units})", text[end:], re.I) if units else None
        if um and um.group(1):
            suffix = um.group(1).lower()
            end += um.end()
        if not _AFTER_OK.match(text, end):
            return "bad"
        value = parse_float(raw.lstrip("+")) if re.search(r"[eE×x*·]", raw) else None
        if value is None:
            try:
                value = float(raw)
            except ValueError:
                return "bad"
        elif raw.startswith("-"):
            value = -value
        return value, end, suffix
    w = _WORD_NUMBER.match(text, pos)
    if w:
        token = w.group(0)
        value = cn_number(token) if token[0] in "零一二两三四五六七八九十" else _EN_NUMBERS.get(token.lower())
        if value is not None:
            return float(value), w.end(), ""
    return None


def _as_int(value: float):
    return int(value) if value == int(value) else value


# ------------------------------------------------------------------------------- key = value

_BOOL_TRUE = {"true", "yes", "on", "1", "enable", "enabled", "开启", "打开", "是"}
_BOOL_FALSE = {"false", "no", "off", "0", "disable", "disabled", "关闭", "否"}
_OPTIMIZER_KEYS = {
    "adamw": "adamw", "adamw_torch": "adamw", "adamw_hf": "adamw", "adam": "adamw", "adamw_torch_fused": "adamw",
    "adamw_8bit": "adamw_8bit", "adamw_bnb_8bit": "adamw_8bit", "adam8bit": "adamw_8bit", "adamw8bit": "adamw_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit", "paged_adamw": "paged_adamw_8bit", "lion": "lion", "lion_32bit": "lion",
    "lion_8bit": "lion_8bit", "adafactor": "adafactor", "sgd": "sgd",
}
_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16", "half": "float16",
           "fp32": "float32", "float32": "float32", "auto": "auto"}

# Key names of tunepilot, axolotl, LLaMA-Factory and transformers' TrainingArguments -> (field, kind).
KEYS: dict[str, tuple[str, str]] = {}
for _names, _target in [
    (("base_model", "model", "model_name_or_path", "model_name", "pretrained_model"), ("model.base_model", "model")),
    (("adapter", "finetuning_type", "method", "finetune_type", "peft_type"), ("method.type", "method")),
    (("load_in_4bit",), ("method.type", "qlora_flag")),
    (("quantization_bit",), ("method.type", "qbits")),
    (("lora_r", "lora_rank", "rank", "r"), ("method.lora_r", "int")),
    (("lora_alpha", "alpha"), ("method.lora_alpha", "int")),
    (("lora_dropout", "dropout"), ("method.lora_dropout", "float")),
    (("sequence_len", "cutoff_len", "max_seq_length", "max_length", "max_seq_len", "seq_len", "max_len",
      "context_length", "model_max_length"), ("dataset.max_seq_length", "length")),
    (("micro_batch_size", "per_device_train_batch_size", "batch_size", "bs", "train_batch_size"), ("training.batch_size", "int")),
    (("gradient_accumulation_steps", "grad_accum", "gradient_accumulation", "accumulation_steps"),
     ("training.gradient_accumulation_steps", "int")),
    (("num_epochs", "num_train_epochs", "epochs", "n_epochs", "epoch"), ("training.epochs", "float")),
    (("max_steps",), ("training.max_steps", "int")),
    (("learning_rate", "lr"), ("optimizer.learning_rate", "float")),
    (("optimizer", "optim"), ("optimizer.type", "optimizer")),
    (("lr_scheduler", "lr_scheduler_type", "scheduler"), ("optimizer.lr_scheduler", "scheduler")),
    (("warmup_ratio", "warmup"), ("optimizer.warmup_ratio", "ratio")),
    (("weight_decay",), ("optimizer.weight_decay", "float")),
    (("seed",), ("training.seed", "int")),
    (("bf16",), ("model.dtype", "flag:bfloat16")),
    (("fp16",), ("model.dtype", "flag:float16")),
    (("torch_dtype", "dtype"), ("model.dtype", "dtype")),
    (("gradient_checkpointing",), ("training.gradient_checkpointing", "bool")),
    (("sample_packing", "packing"), ("training.packing", "bool")),
    (("val_split", "val_set_size", "val_size", "validation_split"), ("dataset.val_split", "ratio")),
    (("output_dir", "out_dir", "output"), ("saving.output_dir", "str")),
    (("save_steps", "save_every_n_steps"), ("saving.save_every_n_steps", "int")),
    (("path", "data", "dataset", "train_file", "data_path", "dataset_path", "train_path", "datasets"), ("dataset.path", "str")),
    (("eval_path", "eval_file", "validation_file", "eval_dataset", "test_file"), ("dataset.eval_path", "str")),
    (("gpu",), ("hardware.gpu", "gpu")),
    (("target_modules", "lora_target", "lora_target_modules"), ("method.target_modules", "modules")),
    (("device_memory_gb", "vram", "gpu_memory"), ("hardware.device_memory_gb", "float")),
    (("device",), ("training.device", "device")),
]:
    for _name in _names:
        KEYS[_name] = _target
# A line "key: value" (YAML, TOML-ish); a value with commas or "=" in it is free text with inline pairs.
# In a pasted block, keys tunepilot has no setting for ("stage: sft") are named in `unread`.
_KV_LINE = re.compile(r"^[ \t]*-?[ \t]*([A-Za-z_][\w.\-]*)[ \t]*[:=：][ \t]*([^\s,，;；=][^\n,，;；=]*?)[ \t]*$", re.M)
_KV_INLINE = re.compile(r"(?<![\w.\-/])([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^\s,;，；]+)")


def _kv_value(kind: str, raw: str):
    """A key=value value as the field's type; None when it cannot be read."""
    raw = raw.strip().strip("'\"").rstrip(",，;；")
    low = raw.lower()
    if kind in ("int", "float", "ratio", "length"):
        m = re.fullmatch(r"([-+]?\s?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?(?:\s*(?:[x×*·])\s*10\s*(?:\^|\*\*)?\s*\(?-?\d+\)?)?)\s*(%|k)?", raw, re.I)
        if not m:
            return None
        value = parse_float(m.group(1).lstrip("+")) if re.search(r"[eE×x*·]", m.group(1)) else float(m.group(1))
        if value is None:
            return None
        if m.group(1).startswith("-") and value > 0:
            value = -value
        unit = (m.group(2) or "").lower()
        if unit == "%":
            value /= 100
        elif unit == "k":
            value *= 1024
        return _as_int(value) if kind in ("int", "length") else value
    if kind == "bool":
        return True if low in _BOOL_TRUE else False if low in _BOOL_FALSE else None
    if kind.startswith("flag:"):
        return kind[5:] if low in _BOOL_TRUE else ("" if low in _BOOL_FALSE else None)
    if kind == "qlora_flag":
        return "qlora" if low in _BOOL_TRUE else ("" if low in _BOOL_FALSE else None)
    if kind == "qbits":
        return "qlora" if low in ("4",) else None
    if kind == "method":
        for name in ("qlora", "lora", "full", "freeze"):
            if low == name:
                return name
        return None
    if kind == "optimizer":
        return _OPTIMIZER_KEYS.get(low.replace("-", "_"))
    if kind == "scheduler":
        return low if low in ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial") else None
    if kind == "dtype":
        return _DTYPES.get(low)
    if kind == "device":
        return low if low in ("auto", "cpu", "cuda", "mps") else None
    if kind == "gpu":
        from trainer.planning.hardware import lookup_gpu

        gpu = lookup_gpu(raw)
        return gpu.name if gpu else raw
    if kind == "model":
        return raw if raw else None
    if kind == "modules":
        names = [x.strip().strip("'\"") for x in raw.strip("[]").split(",") if x.strip()]
        return "all-linear" if names in (["all-linear"], ["all"]) else (names or None)
    return raw or None


# ------------------------------------------------------------------------------- the reader

class _Reader:
    """One message being read: the slots so far and a copy of the text with read parts blanked."""

    def __init__(self, text: str, original: str = ""):
        self.text = text
        self.free = text  # read parts replaced by spaces (same length, so offsets hold)
        self.u = Understanding(text=text)
        # Quotes show the user's own characters ("轮数：很多", not its NFKC form) where the lengths agree.
        self.shown = original if len(original) == len(text) else text
        self.u.text = self.shown

    def claim(self, start: int, end: int) -> None:
        self.free = self.free[:start] + " " * (end - start) + self.free[end:]

    def add(self, name: str, value, start: int, end: int, note: str = "", claim: bool = True) -> None:
        self.u.slots.append(Slot(name, value, (start, end), self.shown[start:end].strip(), note))
        if claim:
            self.claim(start, end)

    def unread(self, start: int, end: int, about: str = "") -> None:
        piece = self.shown[start:end].strip()
        if piece and piece not in self.u.unread:
            self.u.unread.append(piece)
            if about:
                self.u.unread_fields[piece] = about
        self.claim(start, end)


def _key_values(r: _Reader) -> None:
    matches = list(_KV_LINE.finditer(r.text))
    block = sum(m.group(1).lower() in KEYS for m in matches) >= 2  # a pasted config: every key counts
    taken: list[tuple[int, int]] = []
    for m in matches:
        key = m.group(1).lower()
        if key not in KEYS:
            if block and not m.group(2).startswith("//"):
                r.unread(m.start(1), m.end(2))  # a setting tunepilot has no place for
                taken.append((m.start(), m.end()))
            continue
        _apply_kv(r, key, m.group(2), m.start(1), m.end(2))
        taken.append((m.start(), m.end()))
    for m in _KV_INLINE.finditer(r.free):
        key = m.group(1).lower()
        if key in KEYS and not any(s <= m.start() < e for s, e in taken):
            _apply_kv(r, key, m.group(2), m.start(1), m.end(2))


def _apply_kv(r: _Reader, key: str, raw: str, start: int, end: int) -> None:
    name, kind = KEYS[key]
    value = _kv_value(kind, raw)
    if value is None:
        if name == "dataset.path" and not raw.strip():
            return
        r.unread(start, end, name)
        return
    if value == "":  # "bf16: false", "load_in_4bit: false": nothing to set
        r.claim(start, end)
        return
    if name == "training.epochs" and isinstance(value, float):
        value = _as_int(value)
    if name in ("method.lora_r", "method.lora_alpha", "training.batch_size", "training.gradient_accumulation_steps",
                "training.max_steps", "training.seed", "saving.save_every_n_steps") and isinstance(value, float):
        value = _as_int(value)
    if name == "dataset.val_split" and isinstance(value, (int, float)) and value >= 1 and key == "val_set_size":
        r.unread(start, end)  # axolotl's val_set_size may be a row count; a fraction is what tunepilot takes
        return
    if name == "method.type":
        r.u.methods_mentioned.append(value)
    r.add(name, value, start, end)


# ------------------------------------------------------------------------------- models

_HUB_ANY = re.compile(r"(?<![\w/.~\-])([A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*[\w])(?![\w/])")
_NOT_IDS = {"and/or", "w/o", "i/o", "tokens/s", "it/s", "km/h"}
_DATA_EXT_END = re.compile(r"\.(?:jsonl|json|csv|tsv|parquet|txt|toml|yaml|yml)$", re.I)
_SIZE_ONLY = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z0-9])(?=\s*(?:的\s*)?(?:-?\s*param\w*\s*)?(?:model|模型|llm|参数|大模型))", re.I)


def _find_model(r: _Reader) -> None:
    if any(s.field == "model.base_model" for s in r.u.slots):
        return
    t = r.free
    m = _FT_ID.search(t)
    if m:
        r.add("model.base_model", m.group(1), m.start(1), m.end(1))
        return
    for m in _HUB_ANY.finditer(t):
        value = m.group(1)
        before = t[max(0, m.start() - 24): m.start()]
        if value.lower() in _NOT_IDS or _DATA_EXT_END.search(value) or _OUTPUT_CONTEXT.search(before):
            continue
        org, name = value.split("/", 1)
        if not re.search(r"[\d\-]", name) and not re.search(r"[A-Z]", org):
            continue  # "and/or"-like words, not an org/name id
        r.add("model.base_model", value, m.start(1), m.end(1))
        return
    for d in _DIR_TOKEN.finditer(t):
        path = d.group(1).rstrip("/,.，。")
        before = t[max(0, d.start() - 24): d.start()]
        if _DATA_EXT_END.search(path) or _OUTPUT_CONTEXT.search(before) or _DATA_CONTEXT.search(before):
            continue
        r.add("model.base_model", path, d.start(1), d.start(1) + len(path))
        return
    low = t.lower()
    for family, pattern in _MODEL_FAMILIES:
        fm = re.search(pattern, low)
        if not fm:
            continue
        version = next((g for g in fm.groups() if g), None)
        size_m = _MODEL_SIZE.match(low[fm.end():])
        size = f"{float(size_m.group(1)):g}{size_m.group(2).lower()}" if size_m else None
        end = fm.end() + (size_m.end() if size_m else 0)
        # A trailing "-Instruct" / "-chat" / "-it" belongs to the name as written.
        tail = re.match(r"[-\s]?(?:instruct|chat|it|base)(?![a-z])", low[end:])
        if tail:
            end += tail.end()
        more = re.match(r"[-_.][\w.\-]*[\w]", low[end:])
        if more and (size or re.match(r"[-_.]?[a-z]", more.group(0))):
            # "mistral-7b-instruct-v0.2", "phi-3-mini": a specific name, not a family phrase. The
            # resolver cannot reproduce it exactly, so it is kept as written (the estimator reads it).
            end += more.end()
            r.add("model.base_model", r.shown[fm.start(): end].strip(), fm.start(), end)
            return
        written = r.shown[fm.start(): end].strip()
        resolved = canonical_model(family, version, size)
        note = "" if resolved.lower() == written.lower() else f"the family name {written!r} was resolved to {resolved}"
        if not size:
            note = f"{written!r} names no size: {resolved} is assumed; name the exact model to change it"
        r.add("model.base_model", resolved, fm.start(), end, note=note)
        return
    m = _SIZE_ONLY.search(t)
    if m:
        scale = 1e9 if m.group(2).lower() == "b" else 1e6
        r.add("model.size", int(round(float(m.group(1)) * scale)), m.start(1), m.end(2))


# ------------------------------------------------------------------------------- methods, optimizers, words

# "not full fine-tuning", "instead of LoRA", "不要全量": the method named is the one NOT wanted. A
# "no," followed by punctuation is an interjection ("no, use full fine-tuning"), not a negation.
_NEGATED = re.compile(r"(?:(?<![a-z])(?:not|no|instead of|rather than|without|don't|do not)|不要|不用|而不是|不是|别|无需|不做)"
                      r"\s{0,2}(?:[a-z\u4e00-\u9fff]{1,12}\s{0,2})?$", re.I)
# "LoRA rank 8", "lora alpha": a LoRA setting, which does not choose the method.
_LORA_SETTING = re.compile(r"[\s_-]*(?:rank|r|alpha|dropout|秩)(?![a-z])", re.I)


def _not_negated(text: str, start: int) -> bool:
    return not _NEGATED.search(text[max(0, start - 24): start])


def _find_methods(r: _Reader) -> None:
    t = r.free
    spans: list[tuple[int, int, str]] = []
    implied: list[tuple[int, int, str]] = []  # "LoRA rank 8": a LoRA setting, so LoRA only by implication
    for name, pattern in _METHODS:
        for m in pattern.finditer(t):
            if any(s <= m.start() < e for s, e, _ in spans) or not _not_negated(t, m.start()):
                continue
            if name == "lora" and _LORA_SETTING.match(t, m.end()) and t[m.start():m.end()].lower() == "lora":
                implied.append((m.start(), m.end(), name))
                continue
            spans.append((m.start(), m.end(), name))
    m = re.search(r"(?<![\w])(?:4[\s-]?bit|nf4|4\s*位量化|4位)(?![\w])", t, re.I)
    if m and not re.match(r"[\s_-]*(?:adam|lion|optim)", t[m.end():], re.I):
        if not spans:
            spans.append((m.start(), m.end(), "qlora"))
        elif all(name == "qlora" for _, _, name in spans):
            r.claim(m.start(), m.end())  # "4bit qlora": the same choice said twice
    spans.sort()
    for _, _, name in spans:
        if name not in r.u.methods_mentioned:
            r.u.methods_mentioned.append(name)
    mentioned = set(r.u.methods_mentioned)
    if "qlora" in mentioned:
        mentioned.discard("lora")  # QLoRA *is* LoRA on a 4-bit base: naming both is no conflict
    if len(mentioned) == 1 and not any(s.field == "method.type" for s in r.u.slots):
        name = next(iter(mentioned))
        start, end, _ = next(s for s in spans if s[2] == name)
        r.add("method.type", name, start, end)
    elif not mentioned and implied and not any(s.field == "method.type" for s in r.u.slots):
        start, end, name = implied[0]
        r.add("method.type", name, start, end)
        r.u.implied.add("method.type")
    for start, end, _ in spans + implied:
        r.claim(start, end)


def _find_optimizer(r: _Reader) -> None:
    if any(s.field == "optimizer.type" for s in r.u.slots):
        return
    for name, pattern in _OPTIMIZERS:
        m = pattern.search(r.free)
        if m:
            r.add("optimizer.type", name, m.start(), m.end())
            return


_WORD_FIELDS = [
    # (field, value, pattern); negated mentions ("no packing") set False for booleans, nothing otherwise.
    ("optimizer.lr_scheduler", "cosine", r"(?<![a-z])cosine(?![a-z_])(?!\s*similar)|余弦"),
    ("optimizer.lr_scheduler", "linear", r"(?<![a-z-])linear(?=[\s-]+(?:decay|schedule|lr|learning rate|warmup))|线性(?=调度|衰减|学习率)"),
    ("optimizer.lr_scheduler", "constant", r"(?<![a-z])constant(?=[\s-]+(?:schedule|lr|learning rate))|恒定(?=学习率)|常数(?=学习率)"),
    ("training.packing", True, r"(?<![a-z])packing(?![a-z])|(?<![a-z])pack(?:ed)?\s+(?:the\s+)?(?:sequences|examples)|打包"),
    ("training.gradient_checkpointing", True, r"grad(?:ient)?[\s_-]*checkpoint\w*|activation[\s_-]*checkpoint\w*|梯度检查点"),
    ("model.dtype", "bfloat16", r"(?<![a-z0-9])(?:bf16|bfloat16)(?![a-z0-9])"),
    ("model.dtype", "float16", r"(?<![a-z0-9])(?:fp16|float16)(?![a-z0-9])|半精度"),
    ("model.dtype", "float32", r"(?<![a-z0-9])(?:fp32|float32)(?![a-z0-9])|全精度"),
]
_OFF_AFTER = re.compile(r"^\s*(?:[:=：]\s*)?(?:off|false|disabled|no)\b|^\s*(?:关|关闭|不开)", re.I)
_OFF_BEFORE = re.compile(r"(?:no|not|without|disable|turn off|don't use|do not use|关闭|不要|不用|不开|别|无)\W{0,3}\w{0,6}\W{0,2}$", re.I)


def _find_words(r: _Reader) -> None:
    for name, value, pattern in _WORD_FIELDS:
        if any(s.field == name for s in r.u.slots):
            continue
        m = re.search(pattern, r.free, re.I)
        if not m:
            continue
        before = r.free[max(0, m.start() - 16): m.start()]
        off = _OFF_BEFORE.search(before) or _OFF_AFTER.match(r.free[m.end(): m.end() + 12])
        end = m.end()
        on = re.match(r"\s*(?:[:=：]\s*)?(?:on|true|enabled)\b", r.free[end:], re.I)
        if on:
            end += on.end()
        if isinstance(value, bool):
            r.add(name, not off, m.start(), end)
        elif not off:
            r.add(name, value, m.start(), end)
    m = _CPU.search(r.free)
    if m:
        r.add("training.device", "cpu", m.start(), m.end())
    elif not any(s.field == "hardware.gpu" for s in r.u.slots):
        m = _MPS.search(r.free)
        if m:
            r.add("training.device", "mps", m.start(), m.end())
    m = _OPENAI_STYLE.search(r.free)
    if m:
        r.u.openai_style = True
        r.claim(m.start(), m.end())


# ------------------------------------------------------------------------------- paths

def _find_paths(r: _Reader) -> None:
    t = r.free
    for m in _PATH_TOKEN.finditer(t):
        path = m.group(1)
        before = t[max(0, m.start() - 30): m.start()]
        if re.search(r"\.(?:toml|yaml|yml)$", path, re.I):
            continue
        name = "dataset.eval_path" if _EVAL_CONTEXT.search(before) else "dataset.path"
        r.add(name, path, m.start(1), m.end(1))
    for m in _DIR_TOKEN.finditer(r.free):
        before = r.free[max(0, m.start() - 24): m.start()]
        if _OUTPUT_CONTEXT.search(before):
            path = m.group(1).rstrip("/,.，。")
            r.add("saving.output_dir", path, m.start(1), m.start(1) + len(path))


# ------------------------------------------------------------------------------- hardware

_MEMORY = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d)?)\s*(?:gb|gib|g)(?![a-z0-9])", re.I)
_MEMORY_CN = re.compile(r"显存\s*(?:为|是|有|只有|大小)?\s*(\d{1,3})\s*(?:gb|g)?(?![\w.])", re.I)
_RAM_WORDS = re.compile(r"^\s*(?:of\s+)?(?:ram|内存|system memory)", re.I)


def _find_hardware(r: _Reader) -> None:
    from trainer.planning.hardware import lookup_gpu

    if not any(s.field == "hardware.gpu" for s in r.u.slots):
        for m in _GPU_NAME.finditer(r.free):
            gpu = lookup_gpu(m.group(1))
            if gpu is not None:
                r.add("hardware.gpu", gpu.name, m.start(1), m.end(1))
                break
    gpu_slot = next((s for s in r.u.slots if s.field == "hardware.gpu"), None)
    if any(s.field == "hardware.device_memory_gb" for s in r.u.slots):
        return
    for m in list(_MEMORY_CN.finditer(r.free)) + list(_MEMORY.finditer(r.free)):
        value = float(m.group(1))
        if not 1 <= value <= 2000:
            continue
        if _RAM_WORDS.match(r.free[m.end(): m.end() + 16]):
            continue  # machine RAM, not the device the estimate needs
        if gpu_slot is not None:
            gpu = lookup_gpu(gpu_slot.value)
            if gpu is not None and abs(gpu.memory_gb - value) < 1:
                r.claim(m.start(), m.end())  # the card's own size, said again
                continue
        r.add("hardware.device_memory_gb", _as_int(value) if value == int(value) else value, m.start(), m.end())
        return


# ------------------------------------------------------------------------------- keyword = number fields

# field -> (keyword pattern, value kind, units allowed after the value, unit words that may follow a
# value written BEFORE the keyword ("3 epochs")).
_FIELDS: list[tuple[str, str, str, str, str]] = [
    ("training.effective_batch",
     r"(?:effective|global|total)[\s_-]*batch(?:[\s_-]*size)?|等效批(?:大小|量)?|全局批(?:大小|量)?|总批(?:大小|量)", "int", "", ""),
    ("training.gradient_accumulation_steps",
     r"gradient[\s_-]*accumulation(?:[\s_-]*steps)?|grad(?:ient)?[\s_-]*accum\w*(?:[\s_-]*steps)?|accumulation[\s_-]*steps|"
     r"accumulate\s*(?:gradients?\s*)?(?:over|for|across)|(?<![a-z])ga(?![a-z])|梯度累积(?:步数)?|梯度累加(?:步数)?|累积步数",
     "int", "", r"(?:gradient[\s_-]*)?accumulation[\s_-]*steps"),
    ("training.batch_size",
     r"per[\s_-]*device[\s_-]*(?:train[\s_-]*)?batch(?:[\s_-]*size)?|micro[\s_-]*batch(?:[\s_-]*size)?|batch[\s_-]*size|(?<![a-z])bs(?![a-z])|"
     r"每卡批大小|批大小|批次大小|批量大小|批处理大小|批量|(?<![a-z])batch(?![a-z])", "int", "", ""),
    ("training.max_steps", r"max[\s_-]*steps|最大步数|训练步数", "int", "", ""),
    ("training.epochs", r"(?<![a-z])(?:num[\s_]*(?:train[\s_]*)?)?epochs?(?![a-z])|训练轮数|轮数|轮次|周期数", "float", "",
     r"(?:个\s*)?(?:full\s+)?(?:epochs?|passes|轮|遍|个?周期)(?![a-z])"),
    ("method.lora_r", r"lora[\s_-]*(?:rank|r)(?![a-z])|(?<![a-z])rank(?![a-z])|(?<![a-z_'])r(?=\s*[=:：])|(?<![a-z_'])r(?=\s+-?\d)|"
     r"(?<![a-z_'])r(?=\s+(?:to|is|of)\s+-?\d)|秩", "int", "", ""),
    ("method.lora_alpha", r"lora[\s_-]*alpha|(?<![a-z])alpha(?![a-z])|α", "int", "", ""),
    ("method.lora_dropout", r"lora[\s_-]*dropout|(?<![a-z])dropout(?![a-z])", "ratio", "%", ""),
    ("dataset.max_seq_length",
     r"max[\s_-]*(?:seq(?:uence)?[\s_-]*)?len(?:gth)?|max[\s_-]*tokens|cutoff[\s_-]*len(?:gth)?|context(?:[\s_-]*(?:length|window))?|"
     r"seq(?:uence)?[\s_-]*len(?:gth)?|(?<![a-z])ctx(?![a-z])|最大(?:序列|上下文|输入)?长度|序列长度|上下文(?:长度)?|截断长度|最长", "length", "k",
     r"(?:个\s*)?tokens?(?:\s+max)?(?![a-z])|(?:token\s+)?(?:context|ctx)(?:\s+(?:length|window))?(?![a-z])"),
    ("optimizer.warmup_ratio", r"warm[\s_-]*up(?:[\s_-]*ratio)?|预热(?:比例)?", "ratio", "%|steps?|步", r"warm[\s_-]*up|预热"),
    ("optimizer.weight_decay", r"weight[\s_-]*decay|(?<![a-z])wd(?![a-z])|权重衰减", "float", "", r"(?:weight[\s_-]*decay|wd)(?![a-z])"),
    ("dataset.val_split", r"val(?:idation)?[\s_-]*split|验证集比例|验证比例|held[\s-]*out", "ratio", "%",
     r"(?:validation|val|eval|held[\s-]*out)(?:\s+split)?(?![a-z])"),
    ("training.seed", r"(?:random[\s_-]*)?seed|随机种子|种子", "int", "", ""),
    ("optimizer.learning_rate", r"learning[\s_-]*rate|(?<![a-z])lr(?![a-z])|学习率", "float", "", r"(?:as\s+(?:the\s+)?)?(?:learning[\s_-]*rate|lr)(?![a-z])"),
]


def _value_after(r: _Reader, field_name: str, kind: str, units: str, kw_end: int):
    """The value right after a keyword: (value, end) / "bad" (explicitly set but unreadable) / None."""
    t = r.free
    m = re.match(_SET, t[kw_end:], re.I)
    pos = kw_end + (m.end() if m else 0)
    found = _number_at(t, pos, units)
    if found is None or found == "bad":
        explicit = _EXPLICIT_SET.match(t[kw_end:])
        rest = t[pos:pos + 12]
        if found == "bad" or (explicit and re.match(r"[^\s,，。;；]", rest)):
            word = re.match(r"[^\s,，。;；)]+", t[pos:])
            return "bad", (pos + word.end()) if word else pos
        return None
    value, end, suffix = found
    return _convert(field_name, kind, value, suffix), end


def _convert(field_name: str, kind: str, value: float, suffix: str):
    if suffix.startswith("step") or suffix == "步":
        return ("steps", value)
    if suffix == "%":
        value = value / 100
    elif suffix == "k":
        value = value * 1024
    if kind in ("int", "length") or field_name == "training.epochs":
        return _as_int(value)
    return value


def _find_fields(r: _Reader) -> None:
    for name, keyword, kind, units, before_units in _FIELDS:
        for m in list(re.finditer(keyword, r.free, re.I)):
            if r.free[m.start():m.end()].strip() == "":
                continue
            got = _value_after(r, name, kind, units, m.end())
            if got is None:
                continue
            value, end = got
            if value == "bad":
                r.unread(m.start(), end, name)
                continue
            if isinstance(value, tuple):  # "warmup 100 steps": steps, but the config takes a ratio
                r.unread(m.start(), end, name)
                continue
            if name == "training.batch_size" and re.search(r"(?:effective|global|total)\W*$", r.text[max(0, m.start() - 12):m.start()], re.I):
                continue
            r.add(name, value, m.start(), end)
        if before_units:
            _values_before(r, name, kind, before_units)
    _find_save_every(r)
    _find_steps(r)
    _bare_learning_rate(r)


def _values_before(r: _Reader, name: str, kind: str, unit_words: str) -> None:
    pattern = re.compile(rf"(?:(?<=\s)|(?<=^)|(?<=[\u4e00-\u9fff,，(]))([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|[零一二两三四五六七八九十]+|[a-z][a-z-]+)\s*(%|k)?\s*(?:{unit_words})", re.I)
    for m in pattern.finditer(r.free):
        token = m.group(1)
        found = _number_at(token + " ", 0)
        if found is None or found == "bad":
            continue
        value = _convert(name, kind, found[0], (m.group(2) or "").lower())
        if name == "optimizer.warmup_ratio" and not m.group(2):
            continue  # "5 warmup" without % is not a ratio anyone writes
        if name == "optimizer.learning_rate" and not (0 < abs(value) < 1):
            continue
        r.add(name, value, m.start(1), m.end())


def _find_save_every(r: _Reader) -> None:
    m = re.search(r"save(?:\s+a)?(?:\s+checkpoint)?\s+every\s+(\d+)\s*(?:steps?)?|每\s*(\d+)\s*步\s*保存(?:一次)?|save[\s_-]*steps\s*[:=]?\s*(\d+)", r.free, re.I)
    if m:
        r.add("saving.save_every_n_steps", int(next(g for g in m.groups() if g)), m.start(), m.end())


def _find_steps(r: _Reader) -> None:
    """"train for 1000 steps", "训练 500 步": a step budget is max_steps."""
    if any(s.field == "training.max_steps" for s in r.u.slots):
        return
    m = re.search(r"(?:(?<![a-z])(?:train|run|for|stop after)|训练|跑)\s*(?:for\s+)?(-?\d+)\s*(?:optimizer\s+|training\s+)?(?:steps?|步)(?![a-z])", r.free, re.I)
    if m:
        r.add("training.max_steps", int(m.group(1)), m.start(), m.end())


_GPU_COUNT = re.compile(r"(?<![A-Za-z0-9_.])(\d+)\s*(?:x|×|\*|张|块|个)?\s*(?=(?:nvidia\s*)?(?:rtx\s*)?(?:[2345]0[6-9]0|a\d{2,4}|h\d{3}|l40|l4|t4|v100)|gpus?|卡|显卡)|"
                        r"(?<![A-Za-z0-9_.])(\d+)\s*(?:gpus?|cards?|张卡|块卡)(?![a-z])", re.I)
_TARGET_MODULES = re.compile(r"(?:target[\s_-]*modules?|lora[\s_-]*target|target)\s*[:=]?\s*\[?\s*((?:[a-z_]+proj|query_key_value|all-linear)"
                             r"(?:\s*,\s*(?:[a-z_]+proj|query_key_value))*)\s*\]?", re.I)


def _find_gpu_count(r: _Reader) -> None:
    m = _GPU_COUNT.search(r.free)
    if m:
        count = int(m.group(1) or m.group(2))
        r.add("hardware.gpu_count", count, m.start(), m.start() + len(m.group(0).rstrip()))


def _find_target_modules(r: _Reader) -> None:
    m = _TARGET_MODULES.search(r.free)
    if m:
        names = [x.strip() for x in m.group(1).split(",") if x.strip()]
        r.add("method.target_modules", "all-linear" if names == ["all-linear"] else names, m.start(), m.end())


# Numbers no pattern read, with the words around them: named as unread rather than dropped.
_LEFTOVER = re.compile(r"(?:(?:[A-Za-z_]+|[\u4e00-\u9fff]{1,3})[ \t]*[:=：]?[ \t]*)?(?<![A-Za-z0-9_.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
                       r"\s*(?:%|k|x|×)?(?:[ \t]*(?:[A-Za-z_]+|[\u4e00-\u9fff]{1,3}))?")


def _find_leftovers(r: _Reader) -> None:
    for m in _LEFTOVER.finditer(r.free):
        piece = m.group(0).strip()
        if re.fullmatch(r"[-+]?\d+(?:\.\d+)?\.?", piece) and r.free[max(0, m.start() - 1): m.start()] in ("", "\n"):
            continue  # a list number at the start of a line
        r.unread(m.start(), m.end())


def _bare_learning_rate(r: _Reader) -> None:
    """A bare small number in e-notation is a learning rate in practice ("use 1e-5")."""
    if any(s.field == "optimizer.learning_rate" for s in r.u.slots):
        return
    for m in re.finditer(r"(?<![\w.])\d+(?:\.\d+)?\s*[eE]\s*-\s*\d+(?![\w.])|(?<![\w.])\d+(?:\.\d+)?\s*[x×*·]\s*10\s*(?:\^|\*\*)\s*\(?-\d+\)?", r.free):
        value = parse_float(m.group(0))
        if value is not None and 1e-8 <= value <= 1e-2:
            r.add("optimizer.learning_rate", value, m.start(), m.end())
            return


# ------------------------------------------------------------------------------- conflicts, reset

_RESET = re.compile(r"^\s*(?:/reset|start over|start again|reset|restart|new config|forget (?:it|that|everything)|"
                    r"从头开始|重新开始|重来|清空|重置)\b", re.I)
_CONFLICT_FREE = {"dataset.path"}  # a second data file is not a contradiction of the first


def _find_conflicts(u: Understanding) -> None:
    by_field: dict[str, list[Slot]] = {}
    for s in u.slots:
        by_field.setdefault(s.field, []).append(s)
    for name, found in by_field.items():
        values = []
        for s in found:
            if s.value not in values:
                values.append(s.value)
        if name == "method.type" and set(values) == {"lora", "qlora"}:
            values = ["qlora"]  # axolotl's "adapter: lora" + "load_in_4bit: true" is QLoRA
            u.slots = [s for s in u.slots if not (s.field == name and s.value == "lora")]
        if len(values) > 1 and name not in _CONFLICT_FREE:
            u.conflicts.append({"field": name, "values": values, "texts": [s.text for s in found]})


def understand(text: str) -> Understanding:
    """Read one message: its slots (with spans), what could not be read, and contradictions."""
    r = _Reader(normalise(text or ""), text or "")
    if _RESET.match(r.text):
        r.u.reset = True
        m = _RESET.match(r.text)
        r.claim(m.start(), m.end())
    _key_values(r)
    _find_paths(r)
    _find_model(r)
    _find_methods(r)
    _find_optimizer(r)
    _find_gpu_count(r)
    _find_hardware(r)
    _find_target_modules(r)
    _find_words(r)
    _find_fields(r)
    _find_leftovers(r)
    r.u.slots.sort(key=lambda s: s.span[0])
    _find_conflicts(r.u)
    return r.u


# ------------------------------------------------------------------------------- questions vs edits

_QUESTION = re.compile(r"^\s*(?:what|how|why|which|when|where|is|are|does|do|should|can i|could i|would|will|explain)\b|"
                       r"[?？]\s*$|是什么|为什么|怎么|如何|吗\s*[？?]?\s*$|什么是|哪个|区别|多少", re.I)


def is_question(text: str, u: Understanding) -> bool:
    """A question about fine-tuning (to answer from the docs) rather than an edit of the draft.

    A message with a numeric value ("can you set alpha to 64?") is an edit; a question that only
    names things ("what does lora alpha do?", "should I use QLoRA?") is a question.
    """
    if not _QUESTION.search(text):
        return False
    numeric = [s for s in u.slots if isinstance(s.value, (int, float)) and not isinstance(s.value, bool)]
    paths = [s for s in u.slots if s.field in ("dataset.path", "dataset.eval_path", "saving.output_dir", "hardware.gpu")]
    if numeric or paths:
        return False
    return True


# ------------------------------------------------------------------------------- intent

_TRAIN_VERB = re.compile(r"fine[\s-]?tun\w*|finetun\w*|(?<![a-z])train(?:ing)?(?![a-z])|(?<![a-z])sft(?![a-z])|微调|训练|精调|调优", re.I)
_REQUEST = re.compile(
    r"(?:^|\W)(i want|i'd like|i would like|i need|help me|let's|let me|please|can you|could you|set up|create|make|"
    r"give me|generate|build|prepare|start|launch|run|write)\b|^\s*(fine[\s-]?tune|finetune|train|sft)\b|"
    r"(帮我|我想|我要|请|给我|准备|开始|打算|需要|想要|生成|来个|做一个|用\s*\S{0,20}\s*(?:微调|训练))|^\s*(微调|训练)",
    re.I,
)
_ASKS = re.compile(r"^\s*(what|how|why|which|when|where|is|are|does|do|should|can)\b|是什么|为什么|怎么|如何|吗[？?]?\s*$|什么是|哪个", re.I)
_CONCRETE = ("dataset.path", "model.base_model", "training.epochs", "optimizer.learning_rate", "hardware.gpu",
             "hardware.device_memory_gb", "training.batch_size", "saving.output_dir")


def detect_training_intent(text: str) -> bool:
    """Does `text` ask for a training run/config (rather than ask a question about fine-tuning)?"""
    if not text or not _TRAIN_VERB.search(text):
        return False
    found = understand(text).values()
    concrete = sum(1 for name in _CONCRETE if name in found)
    if "dataset.path" in found or concrete >= 2:
        return True
    if _ASKS.search(text):
        return False
    return bool(_REQUEST.search(text)) or concrete >= 1


__all__ = ["KEYS", "Slot", "Understanding", "detect_training_intent", "is_question", "understand"]
