"""Merge a LoRA adapter into its base model and prove the merge changed nothing.

The merged folder is a standalone transformers model (no peft needed to load it). Before saving,
the logits of the merged model and of adapter-on-base are compared on a few probe prompts; the
largest absolute difference is reported (float32 merges land around 1e-5 or below).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tunepilot.core import atomic
from tunepilot.core.errors import UserError

PROBE_PROMPTS = [
    "Who are you?",
    "你好，请介绍一下你自己。",
    "Explain in one sentence what fine-tuning does.",
]


class MergeError(UserError, ValueError):
    """The thing to merge is not an adapter (or cannot be found); the message says what to pass."""


def find_adapter(job_or_dir: str) -> Path:
    """An `ft:` model id, a run folder, or an adapter folder -> the adapter folder.

    Job ids (`ftjob-...`) are turned into their run folder by the caller (`tunepilot merge` asks
    `trainer.jobs`, a layer above this one), so the messages below still name them as accepted.
    """
    ref = str(job_or_dir).strip()
    if ref.startswith("ft:"):
        from trainer.models import registry as models

        resolved = models.resolve(ref)
        if resolved.adapter_path is None:
            raise MergeError(f"{ref} is already a full model (full/freeze training or merged); there is nothing to merge.")
        return resolved.adapter_path
    folder = Path(ref).expanduser()
    for candidate in (folder, folder / "adapter"):
        if (candidate / "adapter_config.json").exists():
            return candidate.resolve()
    if (folder / "model" / "config.json").exists() or (folder / "config.json").exists():
        raise MergeError(f"{folder} holds a full model, not an adapter; there is nothing to merge.")
    raise MergeError(f"No adapter found at {folder}; pass a job id (ftjob-...), an ft: model id, a run folder or an adapter folder.")


def probe_logits(model, tokenizer, prompts: list[str]):
    import torch

    from trainer.models.chat_format import render_prompt

    outs = []
    with torch.inference_mode():
        for prompt in prompts:
            text = render_prompt(tokenizer, [{"role": "user", "content": prompt}])
            enc = tokenizer(text, return_tensors="pt", add_special_tokens=not getattr(tokenizer, "chat_template", None))
            outs.append(model(input_ids=enc["input_ids"]).logits.float())
    return outs


def merge(job_or_dir: str, out: str | Path | None = None, probes: list[str] | None = None) -> dict:
    """Write base+adapter as one model to `out` (default: `merged/` beside the adapter); report the logit check."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainer.models import registry as models
    from trainer.models.generation import load_tokenizer

    adapter = find_adapter(job_or_dir)
    base_ref = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base_ref:
        raise MergeError(f"{adapter}/adapter_config.json does not name its base model (base_model_name_or_path).")
    base_path = models.resolve(base_ref).base_path
    # A checkpoint (ft:...:ckpt-step-N) merges beside the run's final merge, not into it.
    default = f"merged-{adapter.name}" if adapter.name.startswith("checkpoint-") else "merged"
    target = Path(out).expanduser().resolve() if out else adapter.parent / default
    if target.exists() and any(target.iterdir()):
        raise MergeError(f"{target} already exists and is not empty; pass --out with a new folder.")

    tokenizer_source = adapter if (adapter / "tokenizer_config.json").exists() else base_path
    tokenizer = load_tokenizer(tokenizer_source)
    # float32 so that the comparison measures the merge, not bf16 rounding.
    base = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, str(adapter))
    with_adapter.eval()
    prompts = probes or PROBE_PROMPTS
    before = probe_logits(with_adapter, tokenizer, prompts)
    merged = with_adapter.merge_and_unload()
    after = probe_logits(merged, tokenizer, prompts)
    max_diff = max(float((a - b).abs().max()) for a, b in zip(before, after))

    staging = target.parent / f".staging-{target.name}"
    if staging.exists():
        shutil.rmtree(staging)
    merged.save_pretrained(str(staging), safe_serialization=True)
    tokenizer.save_pretrained(str(staging))
    (staging / "merge_info.json").write_text(json.dumps(
        {"adapter": str(adapter), "base_model": base_ref, "max_logit_diff": max_diff, "probes": prompts},
        indent=2, ensure_ascii=False), encoding="utf-8")
    atomic.replace_dir(staging, target)  # `target` is missing or empty (checked above)
    return {"output_dir": str(target), "max_logit_diff": max_diff, "adapter": str(adapter),
            "base_model": base_ref, "probes": len(prompts)}
