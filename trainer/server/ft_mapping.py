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
like a config file. Unless the server allows local paths (`tunepilot serve --allow-local-paths`),
the extension may not point the trainer at server paths (`model.base_model`, `dataset.path`,
`dataset.eval_path`, `saving.output_dir`): a client names models and files by id.

`integrations` of type `wandb` become `training.report_to = "wandb"` with the project, name,
entity and tags given; `metadata` is stored with the job and filters `GET /v1/fine_tuning/jobs`.
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
from trainer.server.errors import redact_paths
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
        if kind not in ("supervised", "dpo"):
            raise MappingError(f"method.type {kind!r} is not supported; tunepilot runs supervised and dpo fine-tuning.",
                               param="method")
        nested = dict((req.method.get(kind) or {}).get("hyperparameters") or {})
        nested.pop("beta", None)  # dpo's own hyperparameter: _dpo_settings reads it
        if nested:
            try:
                return Hyperparameters.model_validate(nested)
            except ValueError as exc:
                raise MappingError(f"Invalid method.{kind}.hyperparameters: {exc}", param="method") from None
    return req.hyperparameters or Hyperparameters()


def _dpo_settings(req: FineTuningJobRequest) -> dict | None:
    """OpenAI's `method: {type: dpo, dpo: {hyperparameters: {beta}}}` -> method.stage = "dpo" and its beta."""
    if not req.method or req.method.get("type") != "dpo":
        return None
    beta = ((req.method.get("dpo") or {}).get("hyperparameters") or {}).get("beta", "auto")
    if beta in (None, "auto"):
        return {"stage": "dpo"}  # the schema's default beta (0.1, also OpenAI's documented default)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta <= 2:
        raise MappingError(f"method.dpo.hyperparameters.beta={beta!r} is out of range; use a number in (0, 2] "
                           "or 'auto'.", param="method.dpo.hyperparameters.beta")
    return {"stage": "dpo", "beta": float(beta)}


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


# Config keys that name server paths; a client may set them only when the server allows local paths.
PATH_KEYS = (("model", "base_model"), ("dataset", "path"), ("dataset", "eval_path"), ("saving", "output_dir"))


def _refuse_path_overrides(overrides: dict) -> None:
    for section, key in PATH_KEYS:
        if isinstance(overrides.get(section), dict) and key in overrides[section]:
            raise MappingError(f"tunepilot.{section}.{key} names a path on the server, which this server does not "
                               "accept; pass the model as `model` and files as file ids (or start the server with "
                               "--allow-local-paths).", param=f"tunepilot.{section}.{key}")


def _tracking_settings(integrations: list | None) -> dict:
    """OpenAI's integrations -> TrainingSection tracking keys (only W&B exists in OpenAI's API)."""
    out: dict = {}
    for i, item in enumerate(integrations or []):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind != "wandb":
            raise MappingError(f"integrations[{i}].type {kind!r} is not supported; use 'wandb', or set "
                               "training.report_to (tensorboard, mlflow) in the tunepilot extension.",
                               param=f"integrations.{i}.type")
        wandb = item.get("wandb") or {}
        if not isinstance(wandb, dict) or not wandb.get("project"):
            raise MappingError(f"integrations[{i}].wandb.project is required.", param=f"integrations.{i}.wandb.project")
        out = {"report_to": "wandb", "tracking_project": wandb["project"], "tracking_run_name": wandb.get("name"),
               "tracking_entity": wandb.get("entity"), "tracking_tags": list(wandb.get("tags") or [])}
    return out


def build_train_config(req: FineTuningJobRequest, training_path: Path, validation_path: Path | None,
                       n_examples: int | None, allow_local_paths: bool = True) -> tuple[TrainConfig, dict]:
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
    dpo = _dpo_settings(req)
    if dpo:
        # Preference tuning runs about an order of magnitude below SFT (knowledge/docs/en/preference-tuning.md).
        learning_rate /= 10
        data["method"].update(dpo)

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
    data["training"].update(_tracking_settings(req.integrations))
    if req.tunepilot:
        if not isinstance(req.tunepilot, dict):
            raise MappingError("tunepilot must be an object of TrainConfig sections.", param="tunepilot")
        if not allow_local_paths:
            _refuse_path_overrides(req.tunepilot)
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
    """A tunepilot job dict (already close to OpenAI's) completed into OpenAI's fine_tuning.job object.

    Server paths stay on the server: `output_dir` is left out, and `result_files` lists file ids
    (the step-metrics CSV, downloadable with GET /v1/files/{id}/content), as OpenAI's does.
    """
    info = remembered(str(job.get("id")))
    out = {k: v for k, v in job.items() if k != "output_dir"}
    out["object"] = "fine_tuning.job"
    out.setdefault("organization_id", "tunepilot-local")
    out["result_files"] = _result_file_ids(str(job.get("id")), job.get("result_files") or [])
    out.setdefault("estimated_finish", None)
    out["integrations"] = out.get("integrations") or []
    if out.get("seed") is None:
        out["seed"] = info.get("seed")
    out.setdefault("metadata", None)
    for key in ("training_file", "validation_file"):
        # Jobs created through the API report the file ids they were given; others their dataset paths.
        stored = info.get(key)
        out[key] = stored if stored is not None else (file_store.file_id_for_path(out.get(key)) or out.get(key))
    hp = dict(out.get("hyperparameters") or {}) if isinstance(out.get("hyperparameters"), dict) else {}
    hp.update(info.get("hyperparameters") or {})
    out["hyperparameters"] = hp
    # OpenAI's method object; tunepilot's own method (lora/qlora/full/freeze) rides along.
    own = job.get("method") if isinstance(job.get("method"), dict) else None
    if own and own.get("stage") == "dpo":
        out["method"] = {"type": "dpo", "dpo": {"hyperparameters": {**hp, "beta": own.get("beta")}}, "tunepilot": own}
    else:
        out["method"] = {"type": "supervised", "supervised": {"hyperparameters": hp}, "tunepilot": own}
    if info.get("suffix") is not None:
        out["user_provided_suffix"] = info["suffix"]
    error = out.get("error")
    if isinstance(error, str) and error:
        out["error"] = {"code": "training_failed", "message": redact_paths(error), "param": None}
    elif isinstance(error, dict):
        out["error"] = {**error, "message": redact_paths(str(error.get("message", "")))}
    else:
        out["error"] = None
    return out


def _result_file_ids(job_id: str, paths: list) -> list[str]:
    """The job's CSV result files as stored file objects (created or refreshed on first read)."""
    ids = []
    for path in paths:
        if str(path).endswith(".csv") and Path(path).is_file():
            ids.append(file_store.store_result_file(Path(path), job_id)["id"])
    return ids


# OpenAI's event levels and types; tunepilot's sample events are messages whose data holds the sample.
_LEVELS = {"warning": "warn"}


def openai_event(event: dict) -> dict:
    out = dict(event)
    out["object"] = "fine_tuning.job.event"
    out["type"] = out.get("type") if out.get("type") in ("message", "metrics") else "message"
    out["level"] = _LEVELS.get(out.get("level") or "info", out.get("level") or "info")
    return out


def list_object(data: list[dict], has_more: bool) -> dict:
    """OpenAI's list envelope, with the first/last id cursors its newer lists carry."""
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def page(items: list[dict], after: str | None, limit: int) -> tuple[list[dict], bool]:
    """OpenAI's cursor paging: items following the one whose id is `after`, at most `limit`."""
    if after is not None:
        ids = [str(i.get("id")) for i in items]
        if after not in ids:
            raise MappingError(f"'after' cursor {after!r} does not match any item; pass an id from a previous page.",
                               param="after")
        items = items[ids.index(after) + 1:]
    return items[:limit], len(items) > limit
