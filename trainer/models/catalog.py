"""Model dimensions for the memory estimate: read from a local config.json, or from a built-in table.

The estimator needs parameter count, layer count, hidden/intermediate sizes, attention heads and
vocabulary size. A local transformers folder has them in config.json (and its safetensors headers
give the exact parameter count); for names such as "Qwen2.5-7B-Instruct" or "llama-3-8b" the
built-in table below holds the published dimensions of popular families, so an estimate works
before anything is downloaded.

Dimensions are taken from each model's published config.json (Hugging Face model cards).

This is the one catalogue of known architectures: the request parser (`assistant.slots`) writes
only family names this table can size, and tests/test_assistant_slots.py pairs every family here
with the parser family that reads it, so `memory.estimate` sizes every id the parser emits.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class ModelDims:
    """The shape facts the estimator uses; `params` is computed when not given."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    head_dim: int | None = None
    tie_embeddings: bool = False
    max_position_embeddings: int = 4096
    needs_remote_code: bool = False
    params: int | None = None
    source: str = "built-in table"
    family: str = ""

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_size

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_size

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of the linear layers in one decoder block, by the usual module names."""
        h, i = self.hidden_size, self.intermediate_size
        return {
            "q_proj": (h, self.q_dim), "k_proj": (h, self.kv_dim), "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h), "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h),
        }

    @property
    def layer_params(self) -> int:
        # Linear weights plus a handful of norm vectors (biases are negligible at this precision).
        return sum(a * b for a, b in self.linear_shapes().values()) + 4 * self.hidden_size

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def total_params(self) -> int:
        if self.params:
            return self.params
        lm_head = 0 if self.tie_embeddings else self.embedding_params
        return self.embedding_params + lm_head + self.num_layers * self.layer_params + self.hidden_size


def _d(name, h, i, layers, heads, kv, vocab, *, head_dim=None, tie=False, max_pos=4096, remote=False) -> ModelDims:
    return ModelDims(name, h, i, layers, heads, kv, vocab, head_dim=head_dim, tie_embeddings=tie,
                     max_position_embeddings=max_pos, needs_remote_code=remote, family=family_of(name))


def family_of(name_or_type: str) -> str:
    """A coarse architecture family for the estimator's per-family activation terms."""
    text = name_or_type.lower()
    return "gemma" if "gemma" in text else ""


# (family, size) -> dims. Sizes are the tokens found in model names ("7b", "270m").
FAMILIES: dict[tuple[str, str], ModelDims] = {
    ("qwen2.5", "0.5b"): _d("Qwen2.5-0.5B", 896, 4864, 24, 14, 2, 151936, tie=True, max_pos=32768),
    ("qwen2.5", "1.5b"): _d("Qwen2.5-1.5B", 1536, 8960, 28, 12, 2, 151936, tie=True, max_pos=32768),
    ("qwen2.5", "3b"): _d("Qwen2.5-3B", 2048, 11008, 36, 16, 2, 151936, tie=True, max_pos=32768),
    ("qwen2.5", "7b"): _d("Qwen2.5-7B", 3584, 18944, 28, 28, 4, 152064, max_pos=32768),
    ("qwen2.5", "14b"): _d("Qwen2.5-14B", 5120, 13824, 48, 40, 8, 152064, max_pos=32768),
    ("qwen2.5", "32b"): _d("Qwen2.5-32B", 5120, 27648, 64, 40, 8, 152064, max_pos=32768),
    ("qwen2.5", "72b"): _d("Qwen2.5-72B", 8192, 29568, 80, 64, 8, 152064, max_pos=32768),
    ("llama3", "1b"): _d("Llama-3.2-1B", 2048, 8192, 16, 32, 8, 128256, tie=True, max_pos=131072),
    ("llama3", "3b"): _d("Llama-3.2-3B", 3072, 8192, 28, 24, 8, 128256, tie=True, max_pos=131072),
    ("llama3", "8b"): _d("Llama-3.1-8B", 4096, 14336, 32, 32, 8, 128256, max_pos=131072),
    ("llama3", "70b"): _d("Llama-3.1-70B", 8192, 28672, 80, 64, 8, 128256, max_pos=131072),
    ("llama3", "405b"): _d("Llama-3.1-405B", 16384, 53248, 126, 128, 8, 128256, max_pos=131072),
    ("llama2", "7b"): _d("Llama-2-7B", 4096, 11008, 32, 32, 32, 32000),
    ("llama2", "13b"): _d("Llama-2-13B", 5120, 13824, 40, 40, 40, 32000),
    ("llama2", "70b"): _d("Llama-2-70B", 8192, 28672, 80, 64, 8, 32000),
    # The original LLaMA: the QLoRA paper's "65B on one 48 GB GPU" figure is about this model.
    ("llama1", "7b"): _d("LLaMA-7B", 4096, 11008, 32, 32, 32, 32000, max_pos=2048),
    ("llama1", "13b"): _d("LLaMA-13B", 5120, 13824, 40, 40, 40, 32000, max_pos=2048),
    ("llama1", "33b"): _d("LLaMA-33B", 6656, 17920, 60, 52, 52, 32000, max_pos=2048),
    ("llama1", "65b"): _d("LLaMA-65B", 8192, 22016, 80, 64, 64, 32000, max_pos=2048),
    ("mistral", "7b"): _d("Mistral-7B", 4096, 14336, 32, 32, 8, 32000, max_pos=32768),
    ("gemma3", "270m"): _d("gemma-3-270m", 640, 2048, 18, 4, 1, 262144, head_dim=256, tie=True, max_pos=32768),
    ("gemma3", "1b"): _d("gemma-3-1b", 1152, 6912, 26, 4, 1, 262144, head_dim=256, tie=True, max_pos=32768),
    ("gemma3", "4b"): _d("gemma-3-4b", 2560, 10240, 34, 8, 4, 262208, head_dim=256, tie=True, max_pos=131072),
    ("gemma3", "12b"): _d("gemma-3-12b", 3840, 15360, 48, 16, 8, 262208, head_dim=256, tie=True, max_pos=131072),
    ("gemma3", "27b"): _d("gemma-3-27b", 5376, 21504, 62, 32, 16, 262208, head_dim=128, tie=True, max_pos=131072),
    ("chatglm3", "6b"): _d("ChatGLM3-6B", 4096, 13696, 28, 32, 2, 65024, max_pos=8192, remote=True),
    ("baichuan2", "7b"): _d("Baichuan2-7B", 4096, 11008, 32, 32, 32, 125696, remote=True),
    ("baichuan2", "13b"): _d("Baichuan2-13B", 5120, 13696, 40, 40, 40, 125696, remote=True),
    # Families the request parser (assistant/slots.py) names, so every id it writes can be sized.
    ("qwen3", "0.6b"): _d("Qwen3-0.6B", 1024, 3072, 28, 16, 8, 151936, head_dim=128, tie=True, max_pos=40960),
    ("qwen3", "1.7b"): _d("Qwen3-1.7B", 2048, 6144, 28, 16, 8, 151936, head_dim=128, tie=True, max_pos=40960),
    ("qwen3", "4b"): _d("Qwen3-4B", 2560, 9728, 36, 32, 8, 151936, head_dim=128, tie=True, max_pos=40960),
    ("qwen3", "8b"): _d("Qwen3-8B", 4096, 12288, 36, 32, 8, 151936, head_dim=128, max_pos=40960),
    ("qwen3", "14b"): _d("Qwen3-14B", 5120, 17408, 40, 40, 8, 151936, head_dim=128, max_pos=40960),
    ("qwen3", "32b"): _d("Qwen3-32B", 5120, 25600, 64, 64, 8, 151936, head_dim=128, max_pos=40960),
    ("qwen2", "0.5b"): _d("Qwen2-0.5B", 896, 4864, 24, 14, 2, 151936, tie=True, max_pos=32768),
    ("qwen2", "1.5b"): _d("Qwen2-1.5B", 1536, 8960, 28, 12, 2, 151936, tie=True, max_pos=32768),
    ("qwen2", "7b"): _d("Qwen2-7B", 3584, 18944, 28, 28, 4, 152064, max_pos=32768),
    ("qwen2", "72b"): _d("Qwen2-72B", 8192, 29568, 80, 64, 8, 152064, max_pos=32768),
    ("gemma2", "2b"): _d("gemma-2-2b", 2304, 9216, 26, 8, 4, 256000, head_dim=256, tie=True, max_pos=8192),
    ("gemma2", "9b"): _d("gemma-2-9b", 3584, 14336, 42, 16, 8, 256000, head_dim=256, tie=True, max_pos=8192),
    ("gemma2", "27b"): _d("gemma-2-27b", 4608, 36864, 46, 32, 16, 256000, head_dim=128, tie=True, max_pos=8192),
    ("chatglm2", "6b"): _d("ChatGLM2-6B", 4096, 13696, 28, 32, 2, 65024, max_pos=32768, remote=True),
    ("internlm2", "1.8b"): _d("InternLM2-1.8B", 2048, 8192, 24, 16, 8, 92544, max_pos=32768, remote=True),
    ("internlm2", "7b"): _d("InternLM2-7B", 4096, 14336, 32, 32, 8, 92544, max_pos=32768, remote=True),
    ("internlm2", "20b"): _d("InternLM2-20B", 6144, 16384, 48, 48, 8, 92544, max_pos=32768, remote=True),
    ("yi", "6b"): _d("Yi-1.5-6B", 4096, 11008, 32, 32, 4, 64000),
    ("yi", "9b"): _d("Yi-1.5-9B", 4096, 11008, 48, 32, 4, 64000),
    ("yi", "34b"): _d("Yi-1.5-34B", 7168, 20480, 60, 56, 8, 64000),
    ("phi3", "3.8b"): _d("Phi-3-mini", 3072, 8192, 32, 32, 32, 32064),
    ("phi3", "14b"): _d("Phi-3-medium", 5120, 17920, 40, 40, 10, 32064),
    ("phi3.5", "3.8b"): _d("Phi-3.5-mini", 3072, 8192, 32, 32, 32, 32064, max_pos=131072),
    ("phi4", "14b"): _d("Phi-4", 5120, 17920, 40, 40, 10, 100352, max_pos=16384),
    ("deepseek", "7b"): _d("DeepSeek-LLM-7B", 4096, 11008, 30, 32, 32, 102400),
    ("deepseek", "67b"): _d("DeepSeek-LLM-67B", 8192, 22016, 95, 64, 8, 102400),
}

# Order matters: the more specific family patterns first.
_FAMILY_PATTERNS: list[tuple[str, str]] = [
    ("qwen2.5", r"qwen[-_ ]?2[._-]?5"),
    ("qwen3", r"qwen[-_ ]?3"),
    ("qwen2", r"qwen[-_ ]?2"),
    ("llama3", r"llama[-_ ]?3"),
    ("llama2", r"llama[-_ ]?2"),
    ("llama1", r"llama"),
    ("mistral", r"mistral"),
    ("gemma3", r"gemma[-_ ]?3"),
    ("gemma2", r"gemma[-_ ]?2"),
    ("chatglm3", r"chatglm[-_ ]?3"),
    ("chatglm2", r"chatglm[-_ ]?2"),
    ("baichuan2", r"baichuan[-_ ]?2"),
    # InternLM2 and 2.5 share their shapes ("internlm2-chat-7b", "internlm2_5-7b-chat").
    ("internlm2", r"internlm[-_ ]?2(?:[._-]5)?"),
    ("phi3.5", r"phi[-_ ]?3[._-]5"),
    ("phi3", r"phi[-_ ]?3"),
    ("phi4", r"phi[-_ ]?4"),
    ("deepseek", r"deepseek[-_ ]?llm"),
    ("yi", r"(?<![a-z0-9])yi(?:[-_ ]?1[._-]5)?(?![a-z])"),
]
# Sizes some publishers write as words ("Phi-3-mini-4k-instruct"); "" is a family with one size.
_SIZE_WORDS: dict[str, dict[str, str]] = {
    "phi3": {"mini": "3.8b", "medium": "14b"},
    "phi3.5": {"mini": "3.8b"},
    "phi4": {"": "14b"},
}
_SIZE = re.compile(r"(?<![\d.a-z])(\d+(?:\.\d+)?)([bm])(?![a-z0-9])")


def known_names() -> list[str]:
    return [d.name for d in FAMILIES.values()]


def match_name(name: str) -> ModelDims | None:
    """Dims for a model name such as "Qwen/Qwen2.5-7B-Instruct", "llama-3-8b" or "gemma-3-270m"."""
    text = name.strip().lower().replace("_", "-")
    text = text.rsplit("/", 1)[-1] if "/" in text else text
    for family, pattern in _FAMILY_PATTERNS:
        if not re.search(pattern, text):
            continue
        # Drop the family's own version number ("qwen2.5", "llama-3.1") before looking for a size.
        rest = re.sub(pattern + r"(\.\d+)?", " ", text, count=1)
        for number, unit in _SIZE.findall(rest):
            size = f"{float(number):g}{unit}"
            if (family, size) in FAMILIES:
                return FAMILIES[(family, size)]
        words = _SIZE_WORDS.get(family, {})
        for word, size in words.items():
            if word and re.search(rf"(?<![a-z]){word}(?![a-z])", rest):
                return FAMILIES[(family, size)]
        if "" in words and not _SIZE.search(rest):
            return FAMILIES[(family, words[""])]
        return None
    return None


def dims_from_config(config: dict, name: str = "", params: int | None = None, source: str = "config.json") -> ModelDims:
    """Dims from a transformers config.json (nested `text_config` for multimodal models)."""
    cfg = config.get("text_config") or config
    get = lambda *keys, default=None: next((cfg[k] for k in keys if cfg.get(k) is not None), default)  # noqa: E731
    hidden = int(get("hidden_size", "n_embd", "d_model"))
    heads = int(get("num_attention_heads", "n_head", default=max(1, hidden // 128)))
    return ModelDims(
        name=name or str(config.get("_name_or_path") or config.get("model_type") or "local model"),
        hidden_size=hidden,
        intermediate_size=int(get("intermediate_size", "ffn_hidden_size", "n_inner", default=4 * hidden)),
        num_layers=int(get("num_hidden_layers", "num_layers", "n_layer")),
        num_heads=heads,
        num_kv_heads=int(get("num_key_value_heads", "multi_query_group_num", default=heads)),
        vocab_size=int(get("vocab_size", "padded_vocab_size")),
        head_dim=get("head_dim", "kv_channels"),
        tie_embeddings=bool(config.get("tie_word_embeddings", cfg.get("tie_word_embeddings", _tie_default(config)))),
        max_position_embeddings=int(get("max_position_embeddings", "seq_length", "n_positions", default=4096)),
        needs_remote_code=bool(config.get("auto_map")),
        params=params,
        source=source,
        family=family_of(str((config.get("text_config") or config).get("model_type") or config.get("model_type") or "")),
    )


def _tie_default(config: dict) -> bool:
    # transformers' PretrainedConfig ties by default; Llama-, Qwen2- and Mistral-style configs untie.
    model_type = str((config.get("text_config") or config).get("model_type") or config.get("model_type") or "")
    return not any(model_type.startswith(t) for t in ("llama", "qwen", "mistral", "mixtral", "chatglm", "baichuan"))


def safetensors_param_count(folder: Path) -> int | None:
    """Exact parameter count from the safetensors headers (8-byte length + JSON; no tensor is read)."""
    total = 0
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    for file in files:
        try:
            with open(file, "rb") as fh:
                (length,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(length))
        except (OSError, ValueError, struct.error):
            return None
        for key, info in header.items():
            if key == "__metadata__":
                continue
            count = 1
            for dim in info.get("shape", []):
                count *= int(dim)
            total += count
    return total or None


def dims_from_folder(folder: str | Path) -> ModelDims | None:
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        return dims_from_config(config, name=folder.name, params=safetensors_param_count(folder),
                                source=str(config_path))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def local_folder_for(base_model: str) -> Path | None:
    """The local folder behind a model name, without provisioning or network access."""
    candidate = Path(base_model).expanduser()
    if (candidate / "config.json").is_file():
        return candidate
    if "/" in base_model and not candidate.exists():
        return None  # a hub id: resolving it could touch the network
    try:
        from trainer.models import registry as models

        resolved = models.resolve(base_model, provision=False, progress=False)
    except Exception:  # unknown names fall back to the table; the launch rules report them
        return None
    path = Path(resolved.base_path)
    return path if (path / "config.json").is_file() else None


def lookup(base_model: str) -> ModelDims | None:
    """Dims for a config's `model.base_model`: local folder first, then the built-in table."""
    folder = local_folder_for(base_model)
    if folder is not None:
        dims = dims_from_folder(folder)
        if dims is not None:
            table = match_name(base_model)
            return replace(dims, name=table.name if table else dims.name)
    return match_name(base_model)
