"""After a successful run: name the fine-tuned model, register it, and merge it if the config asks.

Every entry point that trains ends here — the background worker (`trainer.jobs.worker`),
`tunepilot train` and `tunepilot demo` (`tunepilot.cli.train.run_foreground`) and
`python -m trainer.run_config` / `accelerate launch -m trainer.run_config` (main process only) —
so `saving.merge_after_training` and the registry mean the same thing whichever way a run started.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from trainer.planning.schema import TrainConfig
from trainer.training.callbacks import event
from trainer.training.recipe import TrainResult


@dataclass
class FinishedRun:
    fine_tuned_model: str
    merged: dict | None = None  # trainer.training.merge.merge()'s report, when the run was merged


def new_run_id(prefix: str = "run") -> str:
    """An id for a foreground run (a job's id is its job id): `run-20250101-120000-1a2b`."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def short_base_name(base_model: str) -> str:
    """`gemma-3-270m` stays; a folder becomes its name; `org/name` becomes `name` (ids must not hold ':' or '/')."""
    name = base_model.rstrip("/").split("/")[-1] if ("/" in base_model or os.sep in base_model) else base_model
    return name.replace(":", "-") or "model"


def fine_tuned_model_id(cfg: TrainConfig, run_id: str, suffix: str | None = None) -> str:
    suffix = (suffix or cfg.saving.suffix or "").replace(":", "-")
    return f"ft:{short_base_name(cfg.model.base_model)}:{suffix}:{run_id}"


def finish_run(result: TrainResult, cfg: TrainConfig, model_id: str,
               on_event: Callable[[dict], None] | None = None) -> FinishedRun:
    """Register `result` as `model_id`; with `saving.merge_after_training`, also merge the adapter.

    The id keeps pointing at the adapter on its base (as `tunepilot merge` leaves it), so the Models
    page can still set base, adapter and merged side by side; the merged standalone folder is written
    beside the adapter (`merged/`), where merge, export and the Models page find it. A full/freeze run
    has nothing to merge. A merge that fails raises after the adapter is registered, so the id works.
    """
    from trainer.models import registry as models
    from trainer.training.checkpoints import sync_registry

    sink = on_event or (lambda _e: None)
    base = cfg.model.base_model
    if not result.is_adapter:
        models.register_finetuned(model_id, base_model=base, adapter_path=None, merged_path=result.final_path,
                                  output_dir=result.output_dir)
        sync_registry(model_id, base, result.output_dir, relist=True)
        return FinishedRun(model_id)
    models.register_finetuned(model_id, base_model=base, adapter_path=result.final_path, output_dir=result.output_dir)
    # The kept checkpoints become `<model_id>:ckpt-step-N`, listed after the final model.
    sync_registry(model_id, base, result.output_dir, relist=True)
    if not cfg.saving.merge_after_training:
        return FinishedRun(model_id)

    from trainer.training.merge import merge

    merged = merge(result.final_path)
    sink(event(f"Merged model written to {merged['output_dir']} (max logit difference "
               f"{merged['max_logit_diff']:.2e})", data=merged))
    return FinishedRun(model_id, merged)
