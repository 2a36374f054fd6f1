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
    """Turns each Trainer log into a `metrics` event with tokens/s, peak memory and an estimated finish.

    Keys follow OpenAI's metrics events (`step`, `train_loss`, `train_mean_token_accuracy`,
    `valid_loss`, `valid_mean_token_accuracy`) plus tunepilot's own (`loss` = `train_loss`,
    `learning_rate`, `tokens_per_second`, `trained_tokens`, `estimated_finish`, ...). An evaluation
    is its own event (`valid_loss` set, no `train_loss`); training events carry the latest one.
    """

    def __init__(self, trainer_ref: Callable[[], object], sink: EventSink):
        self._trainer = trainer_ref
        self._sink = sink
        self._last_time = None
        self._last_tokens = 0
        self._began = None
        self._start_step = 0
        self._valid: dict = {"valid_loss": None, "valid_mean_token_accuracy": None}
        self.losses: list[dict] = []
        self.eval_losses: list[dict] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_time = self._began = time.perf_counter()
        self._start_step = state.global_step
        self._last_tokens = self._trainer().tokens_seen
        if state.is_world_process_zero:
            self._sink(event(f"Training started: {state.max_steps} steps", data={"total_steps": state.max_steps,
                                                                                "start_step": state.global_step}))

    def _estimated_finish(self, state) -> int | None:
        """Now + the remaining steps at this session's pace (a resumed run counts from its restart)."""
        done = state.global_step - self._start_step
        if done <= 0 or self._began is None:
            return None
        per_step = (time.perf_counter() - self._began) / done
        return int(time.time() + per_step * max(0, state.max_steps - state.global_step))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "eval_loss" in logs:
            self._valid = {"valid_loss": float(logs["eval_loss"]),
                           "valid_mean_token_accuracy": logs.get("eval_mean_token_accuracy")}
            self.eval_losses.append({"step": state.global_step, "eval_loss": logs["eval_loss"], **self._valid})
            self._sink(event(f"Step {state.global_step}: validation loss {logs['eval_loss']:.4f}", type="metrics",
                             data={"step": state.global_step, "total_steps": state.max_steps, "epoch": state.epoch,
                                   "eval_loss": logs["eval_loss"], **self._valid}))
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
            "train_loss": float(logs["loss"]),
            "train_mean_token_accuracy": logs.get("mean_token_accuracy"),
            **self._valid,
            "learning_rate": float(logs.get("learning_rate", 0.0)),
            "tokens_per_second": round(rate, 2),
            "trained_tokens": int(state.num_input_tokens_seen),
            "estimated_finish": self._estimated_finish(state),
            "peak_memory_mb": round(peak_memory_mb(), 1),
        }
        if "grad_norm" in logs:
            data["grad_norm"] = float(logs["grad_norm"])
        # Preference stages (TRL's DPO / KTO / ORPO trainers) log reward metrics, e.g. rewards/accuracies.
        data.update({k: float(v) for k, v in logs.items() if k.startswith(("rewards/", "logps/"))})
        self.losses.append({"step": data["step"], "loss": data["loss"]})
        self._sink(event(f"Step {data['step']}/{state.max_steps}: training loss={data['loss']:.4f}",
                         type="metrics", data=data))


class CheckpointCallback(TrainerCallback):
    """Announces each saved checkpoint (an event the job worker turns into a model id) and, for full and
    freeze training, saves the tokenizer into it so the checkpoint loads on its own like a model folder.
    It also asks for a last evaluation at the final step, so the final checkpoint has a validation loss."""

    def __init__(self, tokenizer, sink: EventSink, save_tokenizer: bool, has_eval: bool):
        self.tokenizer = tokenizer
        self.sink = sink
        self.save_tokenizer = save_tokenizer
        self.has_eval = has_eval

    def on_step_end(self, args, state, control, **kwargs):
        if self.has_eval and state.global_step >= state.max_steps:
            control.should_evaluate = True

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        import os

        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if self.save_tokenizer and os.path.isdir(folder):
            self.tokenizer.save_pretrained(folder)
        self.sink(event(f"Checkpoint saved at step {state.global_step}", type="message",
                        data={"checkpoint": folder, "step": state.global_step}))


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
