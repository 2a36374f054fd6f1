"""Export a model to GGUF (llama.cpp, Ollama, LM Studio), and check the file by loading it back.

Scope: the default model's family (Gemma 3 text models) and every fine-tune of it: an `ft:` adapter
is merged first (into a scratch folder, or its `merged/` folder when training already wrote one).

How the file is built, all through the `gguf` package:
- tensor names come from `gguf.get_tensor_name_map`, the same table transformers reads GGUF with;
- Gemma's RMSNorm scales by (1 + w) while llama.cpp scales by w, so norm weights are written as w + 1
  (transformers subtracts the 1 again when it loads a Gemma GGUF);
- hyperparameters come from the model's config.json; settings GGUF has no key for must equal the
  defaults llama.cpp assumes for Gemma 3, otherwise the export is refused by name;
- the vocabulary is Gemma's SentencePiece model, copied from the packaged GGUF of the default model
  (pieces, scores, types, special ids) after checking that the model's tokenizer has exactly these
  pieces, so a tokenizer with added tokens is refused instead of written wrong;
- 2-D weights are stored as f16, bf16 or q8_0; 1-D tensors (norms) stay f32, as llama.cpp does.

Every export is verified: transformers loads the GGUF (`gguf_file=`), and its logits on probe prompts
are compared with the source model's (max |difference| is reported, as `merge` does).
The `--ollama` Modelfile carries the turn format and stop tokens the model was trained with.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tunepilot.core import atomic
from tunepilot.core.errors import UserError

DTYPES = ("f16", "bf16", "q8_0")
# HF model_type -> GGUF architecture name. One entry today: the family of the built-in model.
SUPPORTED_ARCHITECTURES = {"gemma3_text": "gemma3"}
GGUF_NAME = "model.gguf"

# Gemma 3 settings that GGUF has no key for: llama.cpp (and transformers reading the GGUF back)
# assume these values, so a model with other values cannot be exported faithfully.
_IMPLIED_GEMMA3 = {
    "hidden_activation": "gelu_pytorch_tanh",
    "rope_local_base_freq": 10000.0,
    "final_logit_softcapping": None,
    "attn_logit_softcapping": None,
}


class ExportError(UserError, ValueError):
    """An export that cannot be done, with what to do instead."""


@dataclass
class ExportResult:
    output_dir: str
    gguf_path: str
    dtype: str
    size_bytes: int
    tensors: int
    max_logit_diff: float
    bf16_rounding_logit_diff: float  # the yardstick max_logit_diff is read against
    probes: int
    source: str
    modelfile: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def export_gguf(model: str, out: str | Path, dtype: str = "f16", ollama: bool = False,
                overwrite: bool = False, probes: list[str] | None = None) -> ExportResult:
    """Write `out/model.gguf` (and `out/Modelfile` with `ollama`) for `model`; verify it by reloading."""
    if dtype not in DTYPES:
        raise ExportError(f"Unknown GGUF dtype {dtype!r}; use one of {', '.join(DTYPES)}.")
    target = Path(out).expanduser().resolve()
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ExportError(f"{target} already exists and is not empty; pass --overwrite or another --out folder.")

    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=_existing_parent(target)))
    try:
        source = _full_model_folder(model, scratch)
        config = _gemma3_config(source)
        staging = scratch / "out"
        staging.mkdir()
        gguf_path = staging / GGUF_NAME
        tensors = _write_gguf(source, config, gguf_path, dtype)
        from trainer.training.merge import PROBE_PROMPTS

        prompts = probes or PROBE_PROMPTS
        max_diff, bf16_diff = _compare_logits(source, gguf_path, prompts)
        modelfile = None
        if ollama:
            modelfile = staging / "Modelfile"
            atomic.write_text(modelfile, ollama_modelfile(source))
        atomic.write_json(staging / "export_info.json", {
            "source": model, "dtype": dtype, "max_logit_diff": max_diff, "bf16_rounding_logit_diff": bf16_diff,
            "probes": prompts}, indent=2)
        if target.exists():
            shutil.rmtree(target)
        atomic.replace_dir(staging, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    final = target / GGUF_NAME
    return ExportResult(output_dir=str(target), gguf_path=str(final), dtype=dtype, size_bytes=final.stat().st_size,
                        tensors=tensors, max_logit_diff=max_diff, bf16_rounding_logit_diff=bf16_diff,
                        probes=len(prompts), source=model,
                        modelfile=str(target / "Modelfile") if modelfile else None)


def _existing_parent(path: Path) -> Path:
    """A folder on the same disk as `path` for scratch files (so the final move is a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent


# ---------------------------------------------------------------- the source model

def _full_model_folder(model: str, scratch: Path) -> Path:
    """A folder with the full weights of `model`: the base, the run's merged/ folder, or a fresh merge."""
    from trainer.models import registry

    resolved = registry.resolve(model)
    if resolved.adapter_path is None:
        return resolved.base_path
    merged = resolved.adapter_path.parent / "merged"
    if (merged / "config.json").exists():
        return merged
    from trainer.training.merge import merge

    return Path(merge(str(resolved.adapter_path), out=scratch / "merged")["output_dir"])


def _gemma3_config(folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_ARCHITECTURES:
        supported = ", ".join(f"{k} (Gemma 3 text)" for k in SUPPORTED_ARCHITECTURES)
        raise ExportError(f"GGUF export does not know the {model_type!r} architecture; supported: {supported}.")
    from transformers import Gemma3TextConfig

    full = Gemma3TextConfig(**{k: v for k, v in config.items() if k not in ("architectures", "model_type")}).to_dict()
    differs = [f"{key}={full.get(key)!r} (GGUF implies {want!r})" for key, want in _IMPLIED_GEMMA3.items()
               if full.get(key) != want]
    if full.get("query_pre_attn_scalar") != full["head_dim"]:
        differs.append(f"query_pre_attn_scalar={full.get('query_pre_attn_scalar')!r} (GGUF implies head_dim)")
    if full.get("rope_scaling"):
        differs.append(f"rope_scaling={full['rope_scaling']!r} (not exported)")
    if differs:
        raise ExportError("This model's config has settings GGUF cannot carry: " + "; ".join(differs) + ".")
    return full


# ---------------------------------------------------------------- writing

def _write_gguf(source: Path, config: dict, path: Path, dtype: str) -> int:
    import gguf
    import numpy as np
    from safetensors import safe_open

    arch = SUPPORTED_ARCHITECTURES[config["model_type"]]
    n_layers = config["num_hidden_layers"]
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, n_layers)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(config.get("_name_or_path") or source.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_key_length(config["head_dim"])
    writer.add_value_length(config["head_dim"])
    writer.add_rope_freq_base(config["rope_theta"])
    writer.add_sliding_window(config["sliding_window"])
    writer.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                          "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype])
    if dtype == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_tokenizer(writer, source)

    count = 0
    with safe_open(str(source / "model.safetensors"), framework="pt") as weights:
        for hf_name in weights.keys():
            if hf_name == "lm_head.weight":
                continue  # Gemma ties the output layer to the embedding; GGUF stores it once
            gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise ExportError(f"No GGUF name for tensor {hf_name!r}; this model is not a plain Gemma 3 text model.")
            data = weights.get_tensor(hf_name).float().numpy()
            if hf_name.endswith("norm.weight"):
                data = data + 1.0  # Gemma's (1 + w) RMSNorm scale, in llama.cpp's convention
            _add_tensor(writer, gguf, np, gguf_name, data, dtype)
            count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return count


def _add_tensor(writer, gguf, np, name: str, data, dtype: str) -> None:
    if data.ndim < 2:
        writer.add_tensor(name, data.astype(np.float32))
    elif dtype == "f16":
        writer.add_tensor(name, data.astype(np.float16))
    else:
        qtype = gguf.GGMLQuantizationType.BF16 if dtype == "bf16" else gguf.GGMLQuantizationType.Q8_0
        block = gguf.GGML_QUANT_SIZES[qtype][0]
        if data.shape[-1] % block:  # q8_0 works in blocks of 32 values along a row
            writer.add_tensor(name, data.astype(np.float16))
            return
        writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)


def _add_tokenizer(writer, source: Path) -> None:
    """Gemma's SentencePiece vocabulary from the packaged GGUF, after checking it is this model's."""
    import gguf

    from trainer.models import registry

    reader = gguf.GGUFReader(str(registry.packaged_gguf()))

    def field(key: str):
        return reader.fields[key]

    tokens_field = field("tokenizer.ggml.tokens")
    pieces = [bytes(tokens_field.parts[i]).decode("utf-8") for i in tokens_field.data]
    vocab = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    by_id = {i: p for p, i in vocab.items()} if isinstance(vocab, dict) else dict(enumerate(p for p, _ in vocab))
    ours = [by_id.get(i) for i in range(max(len(pieces), len(by_id)))]
    # The converted tokenizer spells spaces as "▁" (its normalizer maps " " to "▁"); GGUF keeps them.
    if ours != [p.replace(" ", "▁") for p in pieces]:
        spelled = [p.replace(" ", "▁") for p in pieces]
        changed = next(i for i, (a, b) in enumerate(zip(ours + [None] * len(pieces), spelled + [None] * len(ours)))
                       if a != b)
        raise ExportError(f"This model's tokenizer is not Gemma 3's (first difference at id {changed}); "
                          "GGUF export supports the default model's vocabulary only (no added tokens).")
    writer.add_tokenizer_model(str(field("tokenizer.ggml.model").contents()))
    writer.add_tokenizer_pre(str(field("tokenizer.ggml.pre").contents()))
    writer.add_token_list(pieces)
    writer.add_token_scores(list(field("tokenizer.ggml.scores").contents()))
    writer.add_token_types(list(field("tokenizer.ggml.token_type").contents()))
    writer.add_bos_token_id(int(field("tokenizer.ggml.bos_token_id").contents()))
    writer.add_eos_token_id(int(field("tokenizer.ggml.eos_token_id").contents()))
    writer.add_unk_token_id(int(field("tokenizer.ggml.unknown_token_id").contents()))
    writer.add_pad_token_id(int(field("tokenizer.ggml.padding_token_id").contents()))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    from trainer.models.chat_format import GEMMA_CHAT_TEMPLATE

    writer.add_chat_template(_saved_chat_template(source) or GEMMA_CHAT_TEMPLATE)


def _saved_chat_template(source: Path) -> str | None:
    jinja = source / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text(encoding="utf-8")
    config = source / "tokenizer_config.json"
    if config.exists():
        return json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    return None


# ---------------------------------------------------------------- checking

def _compare_logits(source: Path, gguf_path: Path, prompts: list[str]) -> tuple[float, float]:
    """(max |logit diff| source vs reloaded GGUF, the same for the source rounded to bf16)."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.models.generation import load_tokenizer
    from trainer.training.merge import probe_logits

    tokenizer = load_tokenizer(source)
    reference = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32).eval()
    before = probe_logits(reference, tokenizer, prompts)
    # The yardstick: the same model with its weights rounded to bf16 in torch. A correct f16/bf16
    # file differs from the source by about this much; a wrong mapping by orders of magnitude more.
    with torch.no_grad():
        for param in reference.parameters():
            param.copy_(param.to(torch.bfloat16).float())
    rounded = probe_logits(reference, tokenizer, prompts)
    del reference
    reloaded = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                    dtype=torch.float32).eval()
    after = probe_logits(reloaded, tokenizer, prompts)
    return (max(float((a - b).abs().max()) for a, b in zip(before, after)),
            max(float((a - b).abs().max()) for a, b in zip(before, rounded)))


# ---------------------------------------------------------------- Ollama

def ollama_modelfile(source: Path) -> str:
    """An Ollama Modelfile with Gemma's turn format and the stop tokens training used.

    Ollama templates are Go templates, not Jinja, so the turn format is written out here; it matches
    `trainer.models.chat_format.GEMMA_CHAT_TEMPLATE` (a system prompt goes at the top of the first
    user turn, Gemma has no system role); a test checks both produce the same turn markers.
    """
    from trainer.models.chat_format import stop_token_ids
    from trainer.models.generation import load_tokenizer

    tokenizer = load_tokenizer(source)
    stops = [tokenizer.convert_ids_to_tokens(i) for i in stop_token_ids(tokenizer)]
    lines = [f"FROM ./{GGUF_NAME}", f'TEMPLATE """{OLLAMA_GEMMA_TEMPLATE}"""']
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    return "\n".join(lines) + "\n"


# `.System` (or a system message) opens the first user turn, as Gemma has no system role; every
# turn is closed with <end_of_turn> and the prompt ends with an open model turn, as the training
# template renders it. No `{{-` trimming: it would eat the newlines the format needs.
OLLAMA_GEMMA_TEMPLATE = (
    "{{ $system := .System }}"
    "{{ range $m := .Messages }}"
    "{{ if eq $m.Role \"system\" }}{{ $system = $m.Content }}"
    "{{ else if eq $m.Role \"user\" }}<start_of_turn>user\n"
    "{{ if $system }}{{ $system }}\n\n{{ $system = \"\" }}{{ end }}{{ $m.Content }}<end_of_turn>\n"
    "{{ else if eq $m.Role \"assistant\" }}<start_of_turn>model\n{{ $m.Content }}<end_of_turn>\n"
    "{{ end }}"
    "{{ end }}<start_of_turn>model\n"
)
