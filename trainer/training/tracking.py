"""Experiment tracking (`training.report_to`): the run's metrics also go to TensorBoard, MLflow or W&B.

- `tensorboard`: event files in `<output>/tensorboard` (open with `tensorboard --logdir <output>`);
- `mlflow`: MLflow's local file store in `<output>/mlruns` (`mlflow ui --backend-store-uri <output>/mlruns`);
- `wandb`: Weights & Biases when the package is installed; online if you are logged in, else offline
  files under `<output>/wandb` (`wandb sync` uploads them later).

Each tracker is a small Trainer callback written against the library's own client (SummaryWriter,
MlflowClient, wandb.init) rather than transformers' integrations, which configure themselves from
process-wide environment variables; here everything comes from the config, so two runs in one
process cannot leak settings into each other. A resumed run continues the same tracker run: its id
is kept in the output folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import TrainerCallback

from tunepilot.core.errors import UserError

RUN_ID_FILE = "tracking_run_id.txt"


class TrackingError(UserError, ValueError):
    """The tracker asked for cannot run here; the message names the fix."""


def check_available(report_to: str) -> None:
    """Raise TrackingError when `training.report_to` names a tracker whose package is missing."""
    import importlib.util

    needed = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}.get(report_to)
    if needed and importlib.util.find_spec(needed) is None:
        pip = "mlflow-skinny" if needed == "mlflow" else needed
        raise TrackingError(f"training.report_to = {report_to!r} needs the {needed} package, which is not installed; "
                            f"run `pip install {pip}` or set training.report_to to none, tensorboard or mlflow.")


def _flat_metrics(logs: dict) -> dict[str, float]:
    """Numbers from one Trainer log, named as in the job events (eval_* -> valid_*).

    The Trainer's closing summary (runtime, samples/s, the run's mean `train_loss`) is kept apart
    under `summary_*`, so it never reads as the last step's loss.
    """
    if "train_runtime" in logs:
        return {f"summary_{k}": float(v) for k, v in logs.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
    names = {"loss": "train_loss", "mean_token_accuracy": "train_mean_token_accuracy",
             "eval_loss": "valid_loss", "eval_mean_token_accuracy": "valid_mean_token_accuracy"}
    out = {}
    for key, value in logs.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[names.get(key, key)] = float(value)
    return out


def _hyperparameters(cfg) -> dict[str, str]:
    """The config as flat `section.key` strings (what trackers show as parameters)."""
    flat = {}
    for section, values in cfg.to_dict().items():
        for key, value in values.items():
            flat[f"{section}.{key}"] = str(value)[:500]  # MLflow refuses longer parameter values
    return flat


def _run_name(cfg, out: Path) -> str:
    return cfg.training.tracking_run_name or out.name


def _kept_run_id(out: Path) -> str | None:
    path = out / RUN_ID_FILE
    return path.read_text(encoding="utf-8").strip() or None if path.exists() else None


def _keep_run_id(out: Path, run_id: str) -> None:
    from tunepilot.core import atomic

    atomic.write_text(out / RUN_ID_FILE, run_id)


class TensorBoardTracker(TrainerCallback):
    def __init__(self, cfg, out: Path):
        self.folder = out / "tensorboard"
        self.cfg = cfg
        self.writer = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.folder))
        if state.global_step == 0:  # a resumed run already wrote its config
            self.writer.add_text("config", "\n".join(f"    {k} = {v}" for k, v in _hyperparameters(self.cfg).items()))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.writer is None or not logs:
            return
        for name, value in _flat_metrics(logs).items():
            self.writer.add_scalar(name, value, state.global_step)
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MlflowTracker(TrainerCallback):
    def __init__(self, cfg, out: Path):
        self.cfg = cfg
        self.out = out
        self.uri = (out / "mlruns").resolve().as_uri()
        self.client = None
        self.run_id = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        # Newer MLflow refuses the file store unless this is set; it is the one backend that needs no
        # database or server, which is why it is used here.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        self.run_id = _kept_run_id(self.out)
        if self.run_id is None:
            name = self.cfg.training.tracking_project or "tunepilot"
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            tags = {f"tag.{t}": "true" for t in self.cfg.training.tracking_tags}
            run = self.client.create_run(experiment_id, run_name=_run_name(self.cfg, self.out), tags=tags)
            self.run_id = run.info.run_id
            _keep_run_id(self.out, self.run_id)
            for key, value in _hyperparameters(self.cfg).items():
                self.client.log_param(self.run_id, key, value)
        else:
            self.client.update_run(self.run_id, status="RUNNING")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.client is None or not logs:
            return
        for name, value in _flat_metrics(logs).items():
            self.client.log_metric(self.run_id, name, value, step=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.client is not None:
            # A paused or cancelled run is not finished: leave it to the resume to end it.
            done = state.global_step >= state.max_steps
            self.client.set_terminated(self.run_id, status="FINISHED" if done else "KILLED")
            self.client = None


class WandbTracker(TrainerCallback):
    def __init__(self, cfg, out: Path):
        self.cfg = cfg
        self.out = out
        self.run = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        import importlib

        # An optional plugin the user installs (`pip install wandb`); check_available ran first.
        wandb = importlib.import_module("wandb")
        t = self.cfg.training
        logged_in = _wandb_logged_in(wandb)
        run_id = _kept_run_id(self.out)
        self.run = wandb.init(project=t.tracking_project or "tunepilot", entity=t.tracking_entity,
                              name=_run_name(self.cfg, self.out), tags=list(t.tracking_tags) or None,
                              dir=str(self.out), id=run_id, resume="allow",
                              mode="online" if logged_in else "offline", config=_hyperparameters(self.cfg))
        _keep_run_id(self.out, self.run.id)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.run is not None and logs:
            self.run.log(_flat_metrics(logs), step=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.run is not None:
            self.run.finish()
            self.run = None


def _wandb_logged_in(wandb) -> bool:
    """True when W&B has credentials (`wandb login`, WANDB_API_KEY); never prompts."""
    try:
        return bool(wandb.login(prompt=False, verify=False))
    except TypeError:  # wandb before `prompt=`: ask the stored settings instead
        return bool(getattr(getattr(wandb, "api", None), "api_key", None))
    except Exception:  # noqa: BLE001 (any login failure means: log offline, sync later)
        return False


_TRACKERS = {"tensorboard": TensorBoardTracker, "mlflow": MlflowTracker, "wandb": WandbTracker}


def tracking_callbacks(cfg, out: Path) -> list[TrainerCallback]:
    """The callback for `cfg.training.report_to` (none: no callback); raises TrackingError if its package is missing."""
    report_to = cfg.training.report_to
    if report_to == "none":
        return []
    check_available(report_to)
    return [_TRACKERS[report_to](cfg, Path(out))]
