"""A run's kept checkpoints as models: what each one measured, and its model id in the registry.

A checkpoint folder (`checkpoint-N`, written by the Trainer) holds an adapter (LoRA/QLoRA) or a
whole model (full/freeze; `CheckpointCallback` adds the tokenizer) plus `trainer_state.json`,
whose log history has the losses and token accuracies logged up to step N. So everything a
checkpoint reports is read back from the folder itself: nothing to keep in sync, and a checkpoint
of a foreground run reads the same as one of a job.

Every kept checkpoint is registered as `<fine-tuned id>:ckpt-step-N` (OpenAI's naming), so it
works wherever a model name does (chat-model, evals, serve, merge). `sync_registry` registers new
checkpoints and forgets those the Trainer rotated away (`saving.save_total_limit`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
CHECKPOINT_ID_PART = ":ckpt-step-"


@dataclass
class Checkpoint:
    step: int
    path: Path
    created_at: int
    is_adapter: bool
    metrics: dict = field(default_factory=dict)


def checkpoint_model_id(fine_tuned_model: str, step: int) -> str:
    return f"{fine_tuned_model}{CHECKPOINT_ID_PART}{step}"


def _metrics_at(state: dict, step: int) -> dict:
    """OpenAI's checkpoint metrics at `step` from the Trainer's log history (None where not measured).

    The validation loss is measured over the whole validation set at each eval interval, so
    `valid_*` and `full_valid_*` are the same figures (OpenAI's `valid_*` uses one batch).
    """
    train = next((e for e in state.get("log_history", []) if e.get("step") == step and "loss" in e), {})
    valid = next((e for e in state.get("log_history", []) if e.get("step") == step and "eval_loss" in e), {})
    return {
        "step": float(step),
        "train_loss": train.get("loss"),
        "train_mean_token_accuracy": train.get("mean_token_accuracy"),
        "valid_loss": valid.get("eval_loss"),
        "valid_mean_token_accuracy": valid.get("eval_mean_token_accuracy"),
        "full_valid_loss": valid.get("eval_loss"),
        "full_valid_mean_token_accuracy": valid.get("eval_mean_token_accuracy"),
    }


def list_checkpoints(output_dir: str | Path) -> list[Checkpoint]:
    """The complete checkpoints in a run folder, newest step first (staging leftovers are not complete)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _CHECKPOINT.match(path.name)
        state_file = path / "trainer_state.json"
        if not (match and path.is_dir() and state_file.exists()):
            continue
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # being written or damaged: not a usable checkpoint
        step = int(match.group(1))
        found.append(Checkpoint(step=step, path=path.resolve(), created_at=int(state_file.stat().st_mtime),
                                is_adapter=(path / "adapter_config.json").exists(), metrics=_metrics_at(state, step)))
    return sorted(found, key=lambda c: c.step, reverse=True)


def sync_registry(fine_tuned_model: str, base_model: str, output_dir: str | Path, relist: bool = False) -> list[str]:
    """Register every kept checkpoint of a run under its model id and drop ids whose folder is gone.

    `relist` registers them afresh, after the run's final model, so model lists (which keep the
    registry's order) show the final model before its checkpoints. Returns the ids, newest first.
    """
    from trainer.models import registry as models

    kept = list_checkpoints(output_dir)
    prefix = fine_tuned_model + CHECKPOINT_ID_PART
    if relist:
        for entry in models.list_models():
            if entry.id.startswith(prefix):
                models.unregister(entry.id)
    ids = []
    for ckpt in kept:
        model_id = checkpoint_model_id(fine_tuned_model, ckpt.step)
        models.register_finetuned(model_id, base_model=base_model,
                                  adapter_path=ckpt.path if ckpt.is_adapter else None,
                                  merged_path=None if ckpt.is_adapter else ckpt.path,
                                  output_dir=str(Path(output_dir).resolve()), checkpoint_step=ckpt.step)
        ids.append(model_id)
    for entry in models.list_models():
        if entry.id.startswith(prefix) and entry.id not in ids:
            models.unregister(entry.id)
    return ids
