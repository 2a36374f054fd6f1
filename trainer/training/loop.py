"""transformers' Trainer with three changes the recipe needs; the training loop itself is the library's.

1. The loss is computed from logits at labelled positions only. Gemma's output layer has 262k rows,
   so projecting every position (prompt tokens, padding) costs most of a step; the model's own
   `logits_to_keep` argument (a 1-D index tensor) restricts the projection to the kept positions.
   Going through the model's forward (instead of calling its submodules) keeps DDP, PEFT and
   Gemma's final-logit soft-capping working unchanged.
2. Checkpoints are written to a staging folder and renamed into place, so a save that fails half
   way leaves the previous checkpoint as the latest complete one (resume picks it up).
3. Real (non-padding) tokens are counted, for tokens/s in the metrics; the running total is kept in
   `state.num_input_tokens_seen`, which checkpoints save, so a resumed job reports all its tokens.
4. Next-token accuracy on the labelled positions is measured from the logits the loss already has
   (no extra forward) and logged as `mean_token_accuracy` / `eval_mean_token_accuracy`, the
   figures OpenAI's checkpoints and result files report beside the losses.
"""

from __future__ import annotations

import inspect
import os
import shutil

import torch
import torch.nn.functional as F
from transformers import Trainer

from trainer.data.sft import IGNORE
from trainer.planning.output_dir import STAGING_DIRNAME
from tunepilot.core import atomic


def _accepts_logits_to_keep(model) -> bool:
    base = getattr(model, "module", model)  # unwrap DDP
    if hasattr(base, "get_base_model"):
        base = base.get_base_model()  # unwrap PEFT
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


class AtomicCheckpoints(Trainer):
    """Change 2 above, as a base class so the preference trainers (trainer.training.preference) share it."""

    def _save_checkpoint(self, model, trial):
        """Save into <output>/.staging/checkpoint-N, then rename to <output>/checkpoint-N."""
        real_output = self.args.output_dir
        staging = os.path.join(real_output, STAGING_DIRNAME)
        name = f"checkpoint-{self.state.global_step}"
        if self.args.should_save and os.path.isdir(os.path.join(staging, name)):
            shutil.rmtree(os.path.join(staging, name))
        self.accelerator.wait_for_everyone()
        self.args.output_dir = staging
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.output_dir = real_output
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            final = os.path.join(real_output, name)
            atomic.replace_dir(os.path.join(staging, name), final)
            if self.state.best_model_checkpoint and STAGING_DIRNAME in self.state.best_model_checkpoint:
                self.state.best_model_checkpoint = final
            self._rotate_checkpoints(use_mtime=False, output_dir=real_output)
        self.accelerator.wait_for_everyone()


class SFTTrainer(AtomicCheckpoints):
    """A Trainer whose loss only projects labelled positions through the output layer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Our loss is a per-micro-batch mean; let the Trainer divide by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.tokens_seen = 0
        self.target_tokens_seen = 0
        self._keep_supported = _accepts_logits_to_keep(self.model)
        # [correct, counted] next-token predictions since the last train log / in the current evaluation
        self._accuracy = {"train": [0, 0], "eval": [0, 0]}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        n_tokens = inputs.pop("n_tokens", None)
        if model.training:
            counted = int(n_tokens) if n_tokens is not None else labels.numel()
            self.tokens_seen += counted
            self.state.num_input_tokens_seen += counted
            self.target_tokens_seen += int((labels != IGNORE).sum())
        if self._keep_supported:
            keep = (labels != IGNORE).any(dim=0).nonzero().squeeze(-1)
            outputs = model(**inputs, use_cache=False, logits_to_keep=keep)
            targets = labels[:, keep]
        else:
            outputs = model(**inputs, use_cache=False)
            targets = labels
        logits = outputs.logits
        # Cross-entropy in float32: bf16 logits lose too much precision in the log-softmax.
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)
        self._count_accuracy(logits, targets, "train" if model.training else "eval")
        return (loss, outputs) if return_outputs else loss

    @torch.no_grad()
    def _count_accuracy(self, logits, targets, split: str) -> None:
        mask = targets != IGNORE
        tally = self._accuracy[split]
        tally[0] += int((logits.argmax(dim=-1) == targets)[mask].sum())
        tally[1] += int(mask.sum())

    def _take_accuracy(self, split: str) -> float | None:
        """The accuracy since the last call (summed over processes), then start counting again."""
        correct, counted = self._accuracy[split]
        self._accuracy[split] = [0, 0]
        if self.args.world_size > 1:
            both = self.accelerator.reduce(torch.tensor([correct, counted], device=self.args.device), reduction="sum")
            correct, counted = (int(x) for x in both.tolist())
        return correct / counted if counted else None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # Every process calls log() at the same points, so the reduce above lines up across ranks.
        if "eval_loss" in logs:
            accuracy = self._take_accuracy("eval")
            if accuracy is not None:
                logs["eval_mean_token_accuracy"] = round(accuracy, 4)
        elif "loss" in logs:
            accuracy = self._take_accuracy("train")
            if accuracy is not None:
                logs["mean_token_accuracy"] = round(accuracy, 4)
        super().log(logs, start_time)


def peak_memory_mb() -> float:
    """Peak memory of this process: CUDA allocator peak on GPU, else the peak resident set size."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
