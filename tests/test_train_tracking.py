"""Validation loss each eval interval, token accuracy, checkpoint metrics, and `training.report_to`
read back from what TensorBoard and MLflow actually stored (offline, in the run folder)."""

from __future__ import annotations

import importlib.util

import pytest

from tests import support
from trainer.training.checkpoints import list_checkpoints
from trainer.training.recipe import train

pytestmark = pytest.mark.integration

STEPS = 4


def stop_after(n_steps: int):
    """A `should_stop` that asks to stop at the end of step `n_steps` (the recipe asks once per step)."""
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= n_steps

    return should_stop


def make_cfg(tmp_path, model_dir, **overrides):
    settings = {"training__max_steps": STEPS, "training__batch_size": 2, "training__device": "cpu",
                "dataset__val_split": 0.25, "saving__save_every_n_steps": 2, "saving__save_total_limit": 5,
                **overrides}
    return support.make_cfg(tmp_path, model_dir, **settings)


def test_validation_loss_at_every_checkpoint_and_checkpoint_metrics(tmp_path, tiny_model_dir):
    events = []
    result = train(make_cfg(tmp_path, tiny_model_dir), tmp_path / "run", on_event=events.append)
    valid = [e["data"] for e in events if e["type"] == "metrics" and "valid_loss" in e["data"] and "train_loss" not in e["data"]]
    assert [v["step"] for v in valid] == [2, 4]  # every checkpoint (save_every_n_steps=2), the last one included
    assert all(0.0 <= v["valid_mean_token_accuracy"] <= 1.0 for v in valid)
    train_events = [e["data"] for e in events if e["type"] == "metrics" and "train_loss" in e["data"]]
    assert train_events[2]["valid_loss"] == valid[0]["valid_loss"]  # later steps carry the latest validation
    assert all(0.0 <= t["train_mean_token_accuracy"] <= 1.0 for t in train_events)
    assert train_events[-1]["trained_tokens"] == result.trained_tokens > 0
    import time

    assert all(isinstance(t["estimated_finish"], int) for t in train_events)
    # at the last step nothing remains: the estimate is the moment it was logged (not a speed figure)
    assert time.time() - 600 < train_events[-1]["estimated_finish"] <= time.time() + 1

    checkpoints = list_checkpoints(tmp_path / "run")
    assert [c.step for c in checkpoints] == [4, 2]
    newest = checkpoints[0].metrics
    assert newest["train_loss"] == pytest.approx(result.losses[-1]["loss"])
    assert newest["valid_loss"] == newest["full_valid_loss"] == pytest.approx(valid[-1]["valid_loss"])
    assert newest["valid_mean_token_accuracy"] == pytest.approx(valid[-1]["valid_mean_token_accuracy"])


def test_eval_every_n_steps_sets_its_own_interval(tmp_path, tiny_model_dir):
    events = []
    train(make_cfg(tmp_path, tiny_model_dir, training__eval_every_n_steps=1, saving__save_every_n_steps=100),
          tmp_path / "run", on_event=events.append)
    steps = [e["data"]["step"] for e in events if e["type"] == "metrics" and "train_loss" not in e["data"]
             and "valid_loss" in e["data"]]
    assert steps == [1, 2, 3, 4]


def test_tensorboard_event_files_hold_the_logged_losses(tmp_path, tiny_model_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(make_cfg(tmp_path, tiny_model_dir, training__report_to="tensorboard"), tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    logged = [(s.step, s.value) for s in events.Scalars("train_loss")]
    assert [step for step, _ in logged] == [1, 2, 3, 4]
    assert [value for _, value in logged] == pytest.approx([e["loss"] for e in result.losses], abs=1e-5)
    assert [s.step for s in events.Scalars("valid_loss")] == [2, 4]
    assert "train_mean_token_accuracy" in events.Tags()["scalars"]


def test_mlflow_file_store_holds_the_losses_and_a_resume_continues_the_same_run(tmp_path, tiny_model_dir):
    from mlflow.tracking import MlflowClient

    cfg = make_cfg(tmp_path, tiny_model_dir, training__report_to="mlflow", training__tracking_project="tp-tests")
    stopped = train(cfg, tmp_path / "run", should_stop=stop_after(2))
    assert stopped.status == "cancelled"
    resumed = train(cfg, tmp_path / "run")
    client = MlflowClient(tracking_uri=(tmp_path / "run" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("tp-tests")
    (run,) = client.search_runs([experiment.experiment_id])
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train_loss"))
    assert [step for step, _ in history] == [1, 2, 3, 4]
    losses = stopped.losses + resumed.losses
    assert [value for _, value in history] == pytest.approx([e["loss"] for e in losses], abs=1e-5)
    assert run.data.params["training.max_steps"] == str(STEPS)
    assert run.info.status == "FINISHED"


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_wandb_without_the_package_is_a_one_line_error(tmp_path, tiny_model_dir):
    from trainer import jobs
    from trainer.training.tracking import TrackingError
    from tunepilot.core.errors import is_user_error, one_line

    cfg = make_cfg(tmp_path, tiny_model_dir, training__report_to="wandb")
    with pytest.raises(TrackingError) as err:
        train(cfg, tmp_path / "run")
    assert is_user_error(err.value) and "pip install wandb" in one_line(err.value)
    with pytest.raises(jobs.JobError) as job_err:
        jobs.create_job(cfg)
    assert "pip install wandb" in str(job_err.value)
