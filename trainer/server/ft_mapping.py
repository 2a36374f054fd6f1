"""OpenAI's fine-tuning job request -> a tunepilot `TrainConfig`, and tunepilot jobs -> OpenAI's job object.

Mapping of the hyperparameters (OpenAI documents them in its fine-tuning API reference), using
the rules of tunepilot's `openai-style` preset (trainer.planning.presets) so the CLI, the assistant and the API agree:
- `n_epochs` -> `training.epochs`;
- `batch_size` is the effective batch -> `training.batch_size` x `training.gradient_accumulation_steps`
  (presets.split_batch keeps the per-device batch small);
- `learning_rate_multiplier` m -> `optimizer.learning_rate` = 2e-4 (the LoRA base rate) x m / 0.1, the
  preset's reading of OpenAI's multipliers (0.1 is the middle one).
"auto" (or leaving a value out) takes the preset's value for this many examples: the batch from the
data size, the multiplier from the batch (`presets.openai_learning_rate` turns it into the rate).

Extension: a `tunepilot` object in the request holds any TrainConfig sections to override
(e.g. `{"training": {"max_steps": 20}, "method": {"lora_r": 8}}`); it is applied last and validated
like a config file. `integrations` and `metadata` are accepted and ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field

from trainer.planning import presets
from trainer.planning.config_io import ConfigError, parse_config
from trainer.planning.schema import TrainConfig
from trainer.server import file_store
from tunepilot.core import atomic, workspace
from tunepilot.core.errors import UserError


class MappingError(UserError, ValueError):
    """The request cannot become a valid training config; the message lists the problems."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: Literal["auto"] | int | None = Field(None, description="Passes over the data (1-50) or auto.")
    batch_size: Literal["auto"] | int | None = Field(None, description="Examples per step (1-256) or auto.")
    learning_rate_multiplier: Literal["auto"] | float | None = Field(
        None, description="Scales the auto learning rate (0 < x <= 10) or auto.")


class FineTuningJobRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(..., min_length=1)
    training_file: str = Field(..., min_length=1)
    validation_file: str | None = None
    suffix: str | None = Field(None, max_length=64)
    hyperparameters: Hyperparameters | None = None
    seed: int | None = None
    method: dict[str, Any] | None = None
    integrations: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    tunepilot: dict[str, Any] | None = Field(None, description="Extension: TrainConfig sections to override.")


def _requested_hyperparameters(req: FineTuningJobRequest) -> Hyperparameters:
    """Hyperparameters from the top-level field or from OpenAI's newer `method` object."""
    if req.method:
        kind = req.method.get("type", "supervised")
        if kind != "supervised":
            raise MappingError(f"method.type {kind!r} is not supported; tunepilot runs supervised fine-tuning.",
                               param="method")
        nested = (req.method.get("supervised") or {}).get("hyperparameters")
        if nested:
            try:
                return Hyperparameters.model_validate(nested)
            except ValueError as exc:
                raise MappingError(f"Invalid method.supervised.hyperparameters: {exc}", param="method") from None
    return req.hyperparameters or Hyperparameters()


def _check_range(name: str, value, low, high) -> None:
    if not (low <= value <= high):
        raise MappingError(f"hyperparameters.{name}={value} is out of range; use {low}..{high} or 'auto'.",
                           param=f"hyperparameters.{name}")


def auto_config(n_examples: int | None) -> TrainConfig:
    """The config "auto" stands for: the openai-style preset for this many examples."""
    return presets.preset("openai-style", n_examples)


def _deep_merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse(data: dict) -> TrainConfig:
    try:
        return parse_config(data)
    except ConfigError as exc:
        problems = exc.problems or [{"loc": "", "message": str(exc)}]
        text = "; ".join(f"{p.get('loc')}: {p.get('message')}" if p.get("loc") else str(p.get("message"))
                         for p in problems[:5])
        raise MappingError(f"The resulting training config is invalid: {text}.", param="tunepilot") from None


def build_train_config(req: FineTuningJobRequest, training_path: Path, validation_path: Path | None,
                       n_examples: int | None) -> tuple[TrainConfig, dict]:
    """The TrainConfig for this request and the resolved OpenAI-style hyperparameters."""
    if req.suffix is not None and (":" in req.suffix or not req.suffix.strip()):
        raise MappingError("suffix may not be empty or contain ':' (it becomes part of the ft:... model id).",
                           param="suffix")
    hp = _requested_hyperparameters(req)
    auto = auto_config(n_examples)
    data = auto.model_dump(mode="json")

    epochs = auto.training.epochs
    if hp.n_epochs not in (None, "auto"):
        _check_range("n_epochs", hp.n_epochs, 1, 50)
        epochs = hp.n_epochs
    device_batch, accumulation = auto.training.batch_size, auto.training.gradient_accumulation_steps
    if hp.batch_size not in (None, "auto"):
        _check_range("batch_size", hp.batch_size, 1, 256)
        device_batch, accumulation = presets.split_batch(hp.batch_size)
    effective = device_batch * accumulation
    if hp.learning_rate_multiplier in (None, "auto"):
        multiplier = presets.openai_lr_multiplier(effective)
    else:
        multiplier = float(hp.learning_rate_multiplier)
        if not (0 < multiplier <= 10):
            raise MappingError(f"hyperparameters.learning_rate_multiplier={multiplier} is out of range; use a "
                               "number in (0, 10] or 'auto'.", param="hyperparameters.learning_rate_multiplier")
    learning_rate = presets.openai_learning_rate(multiplier)

    data["model"]["base_model"] = req.model
    data["dataset"]["path"] = str(training_path)
    data["dataset"]["eval_path"] = str(validation_path) if validation_path else None
    data["training"]["epochs"] = epochs
    data["training"]["batch_size"] = device_batch
    data["training"]["gradient_accumulation_steps"] = accumulation
    data["optimizer"]["learning_rate"] = learning_rate
    if req.seed is not None:
        data["training"]["seed"] = req.seed
    data["saving"]["suffix"] = req.suffix
    if req.tunepilot:
        if not isinstance(req.tunepilot, dict):
            raise MappingError("tunepilot must be an object of TrainConfig sections.", param="tunepilot")
        data = _deep_merge(data, req.tunepilot)
    data = {k: ({kk: vv for kk, vv in v.items() if vv is not None} if isinstance(v, dict) else v)
            for k, v in data.items()}
    cfg = _parse(data)
    resolved = {"n_epochs": cfg.training.epochs,
                "batch_size": cfg.training.batch_size * cfg.training.gradient_accumulation_steps,
                "learning_rate_multiplier": multiplier}
    return cfg, resolved


# ------------------------------------------------------------ what the server remembers per job

def _sidecar() -> Path:
    return workspace.subdir("server") / "fine_tuning_jobs.json"


def remember_job(job_id: str, info: dict) -> None:
    """Keep the OpenAI-side facts of a job (file ids, requested hyperparameters) the trainer does not store."""
    path = _sidecar()
    with FileLock(str(path) + ".lock"):
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        data[job_id] = info
        atomic.write_json(path, data)


def remembered(job_id: str) -> dict:
    path = _sidecar()
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(job_id, {})
    except json.JSONDecodeError:
        return {}


def openai_job(job: dict) -> dict:
    """A tunepilot job dict (already close to OpenAI's) completed into OpenAI's fine_tuning.job object."""
    info = remembered(str(job.get("id")))
    out = dict(job)
    out["object"] = "fine_tuning.job"
    out.setdefault("organization_id", "tunepilot-local")
    out.setdefault("result_files", [])
    out.setdefault("estimated_finish", None)
    out.setdefault("integrations", [])
    out.setdefault("seed", info.get("seed"))
    for key in ("training_file", "validation_file"):
        # Jobs created through the API report the file ids they were given; others their dataset paths.
        stored = info.get(key)
        out[key] = stored if stored is not None else (file_store.file_id_for_path(out.get(key)) or out.get(key))
    hp = dict(out.get("hyperparameters") or {}) if isinstance(out.get("hyperparameters"), dict) else {}
    hp.update(info.get("hyperparameters") or {})
    out["hyperparameters"] = hp
    # OpenAI's method object; tunepilot's own method (lora/qlora/full/freeze) rides along.
    out["method"] = {"type": "supervised", "supervised": {"hyperparameters": hp},
                     "tunepilot": job.get("method") if isinstance(job.get("method"), dict) else None}
    if info.get("suffix") is not None:
        out["user_provided_suffix"] = info["suffix"]
    error = out.get("error")
    if isinstance(error, str) and error:
        out["error"] = {"code": "training_failed", "message": error, "param": None}
    elif not error:
        out["error"] = None
    return out


def openai_event(event: dict) -> dict:
    out = dict(event)
    out["object"] = "fine_tuning.job.event"
    out.setdefault("type", "message")
    out.setdefault("level", "info")
    return out


def page(items: list[dict], after: str | None, limit: int) -> tuple[list[dict], bool]:
    """OpenAI's cursor paging: items following the one whose id is `after`, at most `limit`."""
    if after is not None:
        ids = [str(i.get("id")) for i in items]
        if after not in ids:
            raise MappingError(f"'after' cursor {after!r} does not match any item; pass an id from a previous page.",
                               param="after")
        items = items[ids.index(after) + 1:]
    return items[:limit], len(items) > limit
