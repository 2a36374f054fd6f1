"""Trainer callbacks: per-step metrics events, sample generations, and a graceful stop on request.

Events are plain dicts `{"level", "message", "type", "data"}` handed to the recipe's `on_event`; the
job store adds `id` and `created_at`. Only the main process emits, so a multi-process run reports once.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from transformers import TrainerCallback

from trainer.training.loop import peak_memory_mb

EventSink = Callable[[dict], None]


def event(message: str, type: str = "message", level: str = "info", data: dict | None = None) -> dict:
    return {"level": level, "message": message, "type": type, "data": data or {}}


class MetricsCallback(TrainerCallback):
    """Turns each Trainer log into a `metrics` event with tokens/s and peak memory added."""

    def __init__(self, trainer_ref: Callable[[], object], sink: EventSink):
        self._trainer = trainer_ref
        self._sink = sink
        self._last_time = None
        self._last_tokens = 0
        self.losses: list[dict] = []
        self.eval_losses: list[dict] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_time = time.perf_counter()
        self._last_tokens = self._trainer().tokens_seen
        if state.is_world_process_zero:
            self._sink(event(f"Training started: {state.max_steps} steps", data={"total_steps": state.max_steps,
                                                                                "start_step": state.global_step}))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "eval_loss" in logs:
            self.eval_losses.append({"step": state.global_step, "eval_loss": logs["eval_loss"]})
            self._sink(event(f"Step {state.global_step}: eval loss {logs['eval_loss']:.4f}", type="metrics",
                             data={"step": state.global_step, "epoch": state.epoch, "eval_loss": logs["eval_loss"]}))
            return
        if "loss" not in logs:
            return
        now = time.perf_counter()
        tokens = self._trainer().tokens_seen
        elapsed = max(now - (self._last_time or now), 1e-9)
        rate = (tokens - self._last_tokens) / elapsed if self._last_time else 0.0
        self._last_time, self._last_tokens = now, tokens
        data = {
            "step": state.global_step,
            "total_steps": state.max_steps,
            "epoch": round(state.epoch or 0.0, 4),
            "loss": float(logs["loss"]),
            "learning_rate": float(logs.get("learning_rate", 0.0)),
            "tokens_per_second": round(rate, 2),
            "peak_memory_mb": round(peak_memory_mb(), 1),
        }
        if "grad_norm" in logs:
            data["grad_norm"] = float(logs["grad_norm"])
        self.losses.append({"step": data["step"], "loss": data["loss"]})
        self._sink(event(f"Step {data['step']}/{state.max_steps}: training loss={data['loss']:.4f}",
                         type="metrics", data=data))


class SampleCallback(TrainerCallback):
    """Every `every_n_steps`, generate replies to the configured prompts with the model being trained."""

    def __init__(self, tokenizer, prompts: list[str], every_n_steps: int, sink: EventSink, max_new_tokens: int = 48):
        self.tokenizer = tokenizer
        self.prompts = prompts
        self.every = every_n_steps
        self.sink = sink
        self.max_new_tokens = max_new_tokens
        self.samples: list[dict] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not (self.every and self.prompts and state.global_step % self.every == 0 and state.is_world_process_zero):
            return
        self.sample(model, state.global_step)

    def sample(self, model, step: int) -> list[dict]:
        from trainer.models.chat_format import stop_token_ids
        from trainer.models.generation import LoadedModel, build_messages, generate

        was_training = model.training
        model.eval()
        try:
            loaded = LoadedModel(name="training", model=model, tokenizer=self.tokenizer,
                                 stop_ids=stop_token_ids(self.tokenizer), lock=threading.Lock())
            replies = generate(loaded, [build_messages(p) for p in self.prompts], max_new_tokens=self.max_new_tokens)
        finally:
            if was_training:
                model.train()
        batch = [{"step": step, "prompt": p, "output": r} for p, r in zip(self.prompts, replies)]
        self.samples += batch
        for item in batch:
            self.sink(event(f"Step {step} sample: {item['prompt']} -> {item['output']}", type="sample", data=item))
        return batch


class StopCallback(TrainerCallback):
    """Stops training at the next step boundary when `should_stop()` turns true, saving a checkpoint first."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop
        self.stopped = False

    def on_step_end(self, args, state, control, **kwargs):
        if self.should_stop():
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
