"""transformers' Trainer with three changes the recipe needs; the training loop itself is the library's.

1. The loss is computed from logits at labelled positions only. Gemma's output layer has 262k rows,
   so projecting every position (prompt tokens, padding) costs most of a step; the model's own
   `logits_to_keep` argument (a 1-D index tensor) restricts the projection to the kept positions.
   Going through the model's forward (instead of calling its submodules) keeps DDP, PEFT and
   Gemma's final-logit soft-capping working unchanged.
2. Checkpoints are written to a staging folder and renamed into place, so a save that fails half
   way leaves the previous checkpoint as the latest complete one (resume picks it up).
3. Real (non-padding) tokens are counted, for tokens/s in the metrics.
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


class SFTTrainer(Trainer):
    """A Trainer whose loss only projects labelled positions through the output layer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Our loss is a per-micro-batch mean; let the Trainer divide by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.tokens_seen = 0
        self.target_tokens_seen = 0
        self._keep_supported = _accepts_logits_to_keep(self.model)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        n_tokens = inputs.pop("n_tokens", None)
        if model.training:
            self.tokens_seen += int(n_tokens) if n_tokens is not None else labels.numel()
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
        return (loss, outputs) if return_outputs else loss

    # ------------------------------------------------------------ atomic checkpoints

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


def peak_memory_mb() -> float:
    """Peak memory of this process: CUDA allocator peak on GPU, else the peak resident set size."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
