"""Training numbers, not just shapes: pinned losses, resume == uninterrupted, checkpointing, accumulation.

As torchtune's recipe tests do: a seeded run on the tiny model logs the same losses every time, and a
run stopped at a checkpoint and resumed logs, after the resume, exactly the losses of the run that was
never stopped (so a resume that lost the optimizer state, the LR schedule, the data position or the
RNG state fails). Each feature test has a control that fails when the feature is off.

float32 on the CPU (`model.dtype`, `training.device`), so the pinned figures do not depend on the
machine's bf16 support or on a GPU being present.
"""

from __future__ import annotations

import pytest

from tests.support import chat_row, make_cfg
from trainer.training.recipe import train

pytestmark = pytest.mark.integration

STEPS = 6
# Logged by the recipe below on the tiny model (tests/tiny_model.py); transformers rounds logged losses
# to 4 decimals, so the tolerance allows one rounding step. Re-pin only for a deliberate change of the
# recipe, the tiny model or the libraries' numerics, and say which in the commit.
PINNED_LOSSES = [6.2337, 6.1576, 6.0517, 5.9731, 5.8907, 6.0371]
TOLERANCE = 2e-4


def seeded_cfg(tmp_path, model_dir, **overrides):
    settings = {"training__max_steps": STEPS, "training__batch_size": 2, "training__device": "cpu",
                "optimizer__learning_rate": 2e-2, **overrides}
    return make_cfg(tmp_path, model_dir, **settings)


def metrics_of(events: list[dict]) -> list[dict]:
    return [e["data"] for e in events if e["type"] == "metrics" and "loss" in e["data"]]


def losses(result) -> list[float]:
    return [entry["loss"] for entry in result.losses]


def stop_after(n_steps: int):
    """A `should_stop` that asks to stop at the end of step `n_steps` (the recipe checks once per step)."""
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= n_steps

    return should_stop


def test_a_seeded_run_logs_the_pinned_losses(tmp_path, tiny_model_dir):
    first = train(seeded_cfg(tmp_path, tiny_model_dir), tmp_path / "one")
    assert [e["step"] for e in first.losses] == list(range(1, STEPS + 1))
    assert losses(first) == pytest.approx(PINNED_LOSSES, abs=TOLERANCE)
    # The seed covers the adapter's initialisation too: a second run in the same process is identical.
    second = train(seeded_cfg(tmp_path, tiny_model_dir), tmp_path / "two")
    assert losses(second) == losses(first)


def test_resumed_run_logs_the_losses_of_the_uninterrupted_run(tmp_path, tiny_model_dir):
    uninterrupted = losses(train(seeded_cfg(tmp_path, tiny_model_dir), tmp_path / "straight"))

    stopped = train(seeded_cfg(tmp_path, tiny_model_dir), tmp_path / "resumed", should_stop=stop_after(3))
    assert stopped.status == "cancelled" and stopped.global_step == 3
    assert losses(stopped) == uninterrupted[:3]
    resumed = train(seeded_cfg(tmp_path, tiny_model_dir), tmp_path / "resumed")
    assert resumed.resumed_from.endswith("checkpoint-3") and resumed.status == "succeeded"
    assert [e["step"] for e in resumed.losses] == [4, 5, 6]
    assert losses(resumed) == pytest.approx(uninterrupted[3:], abs=1e-6)

    # Control: the same resume without the optimizer state must differ, or this test proves nothing.
    train(seeded_cfg(tmp_path, tiny_model_dir), tmp_path / "control", should_stop=stop_after(3))
    (tmp_path / "control" / "checkpoint-3" / "optimizer.pt").unlink()
    without_optimizer = losses(train(seeded_cfg(tmp_path, tiny_model_dir), tmp_path / "control"))
    assert without_optimizer != pytest.approx(uninterrupted[3:], abs=TOLERANCE)


def test_gradient_checkpointing_recomputes_the_layers_and_keeps_the_losses(tmp_path, tiny_model_dir, monkeypatch):
    """With checkpointing on, every decoder layer runs again in the backward pass (twice per step)."""
    from transformers.models.gemma3 import modeling_gemma3

    layer_forward = modeling_gemma3.Gemma3DecoderLayer.forward
    calls = {"n": 0}

    def counting_forward(self, *args, **kwargs):
        if self.training:
            calls["n"] += 1
        return layer_forward(self, *args, **kwargs)

    monkeypatch.setattr(modeling_gemma3.Gemma3DecoderLayer, "forward", counting_forward)
    n_layers = 2  # tests/tiny_model.py
    plain = train(seeded_cfg(tmp_path, tiny_model_dir, training__max_steps=2), tmp_path / "plain")
    plain_calls, calls["n"] = calls["n"], 0
    checkpointed = train(seeded_cfg(tmp_path, tiny_model_dir, training__max_steps=2, training__gradient_checkpointing=True),
                         tmp_path / "checkpointed")
    assert plain_calls == 2 * n_layers  # one forward per layer per step
    assert calls["n"] == 2 * plain_calls  # ... and one recomputation per layer per step
    assert losses(checkpointed) == pytest.approx(losses(plain), abs=1e-6)  # recomputation changes no number


def test_gradient_accumulation_steps_like_one_big_batch(tmp_path, tiny_model_dir):
    """2 micro-batches of 2 accumulated == one batch of 4: same optimizer steps, loss and gradient norm.

    Identical rows and no LoRA dropout make every micro-batch the same, so the comparison is exact; it fails when the
    accumulation is ignored (twice the steps) or the loss is not divided by the accumulation steps
    (twice the loss and gradient).
    """
    rows = [chat_row("Question: hello how are you", "The answer is yes. The answer is yes.")] * 8

    def run(name, **training):
        events = []
        cfg = make_cfg(tmp_path, tiny_model_dir, rows=rows, training__device="cpu", method__lora_dropout=0.0,
                       optimizer__type="sgd", optimizer__learning_rate=5e-2, **{f"training__{k}": v for k, v in training.items()})
        result = train(cfg, tmp_path / name, on_event=events.append)
        return result, metrics_of(events)

    big, big_metrics = run("big", batch_size=4)
    accumulated, acc_metrics = run("accumulated", batch_size=2, gradient_accumulation_steps=2)
    assert big.global_step == accumulated.global_step == 2  # 8 rows / (2 x 2)
    assert [m["step"] for m in acc_metrics] == [1, 2]
    assert [m["loss"] for m in acc_metrics] == pytest.approx([m["loss"] for m in big_metrics], abs=TOLERANCE)
    assert [m["grad_norm"] for m in acc_metrics] == pytest.approx([m["grad_norm"] for m in big_metrics], rel=1e-4)
