"""Fit: change the knobs the user did not set until the memory estimate fits the target.

The third of the planner's steps (`assistant.understand` -> `assistant.plan` -> fit). The estimate
is `trainer.planning.memory.estimate`, the one the config card and `tunepilot config estimate`
show, judged on the planned target. Knobs are tried in the order that costs the least, each only
when the user did not set it:

1. the per-device batch, with gradient accumulation raised so the effective batch stays what it
   was (the estimate's own largest-fitting-batch search picks the size);
2. gradient checkpointing;
3. max_seq_length, halved down to a floor (never below what the data needs when that is known);
4. LoRA -> QLoRA (with its 8-bit paged optimizer), only where the target has CUDA.

The plan must fit with a margin (`MARGIN` of the device memory left free for fragmentation and
other processes); when only the bare memory can be met, that plan is kept and marked tight. When
nothing fits, `fits` is False and `suggestions` say what would: a bigger GPU, QLoRA, a smaller model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainer.models.device import Environment
from trainer.planning.schema import TrainConfig

MARGIN = 0.10
LENGTH_FLOOR = 256
# Cards a "needs N GB" suggestion picks from (catalogue names), smallest first.
SUGGESTED_GPUS = ("RTX 4060 Ti 16GB", "RTX 4090", "RTX 5090", "A40", "A100 80G", "H200")
M = "en/memory.md"


@dataclass
class FitResult:
    config: TrainConfig
    fits: bool | None  # None: the estimate could not be made (unknown model or memory)
    total_gb: float | None = None
    memory_gb: float | None = None
    changes: list[dict] = field(default_factory=list)  # {"field", "from", "to", "reason", "source"}
    suggestions: list[str] = field(default_factory=list)
    tight: bool = False
    error: str = ""

    def to_dict(self) -> dict:
        return {"fits": self.fits, "total_gb": self.total_gb, "memory_gb": self.memory_gb, "margin": MARGIN,
                "tight": self.tight, "changes": self.changes, "suggestions": self.suggestions}


def _estimate(cfg: TrainConfig, env: Environment | None, memory_cap: float | None = None):
    """The estimate of `cfg`; with `memory_cap`, judged against that much memory (for the margin)."""
    from trainer.planning.memory import estimate

    probe = cfg.model_copy(deep=True)
    if memory_cap is not None:
        probe.hardware.device_memory_gb = memory_cap
    return estimate(probe, env=env)


def _divisor_at_most(effective: int, limit: int) -> int:
    return max(d for d in range(1, max(1, min(effective, limit)) + 1) if effective % d == 0)


def _with_batch(cfg: TrainConfig, largest: int, pinned: set[str]) -> TrainConfig | None:
    """`cfg` at the largest per-device batch <= `largest`, accumulation keeping the effective batch."""
    t = cfg.training
    if largest < 1:
        return None
    if "training.batch_size" in pinned:
        return cfg if t.batch_size <= largest else None
    if t.batch_size <= largest:
        return cfg
    out = cfg.model_copy(deep=True)
    effective = max(1, t.batch_size * max(t.gradient_accumulation_steps, 1))
    if "training.gradient_accumulation_steps" in pinned:
        out.training.batch_size = largest
    else:
        out.training.batch_size = _divisor_at_most(effective, largest)
        out.training.gradient_accumulation_steps = effective // out.training.batch_size
    return out


def _stages(cfg: TrainConfig, pinned: set[str], env: Environment | None, length_floor: int):
    """Configs to try, each changing one more knob than the last: (config, reason for the change)."""
    current = cfg
    yield current, ""
    if "training.gradient_checkpointing" not in pinned and not current.training.gradient_checkpointing:
        current = current.model_copy(deep=True)
        current.training.gradient_checkpointing = True
        yield current, "gradient checkpointing keeps only each layer's input and recomputes the rest (about 20-30% slower)"
    if "dataset.max_seq_length" not in pinned:
        current = yield from _halved_lengths(current, length_floor)
    if ("method.type" not in pinned and current.method.type == "lora" and env is not None and env.has_cuda):
        current = current.model_copy(deep=True)
        current.method.type = "qlora"
        if "optimizer.type" not in pinned and current.optimizer.type == "adamw":
            current.optimizer.type = "paged_adamw_8bit"
        current.dataset.max_seq_length = cfg.dataset.max_seq_length  # 4-bit weights first, full length again
        yield current, "QLoRA keeps the frozen base in 4-bit NF4: about a quarter of the 16-bit weights"
        if "dataset.max_seq_length" not in pinned:
            yield from _halved_lengths(current, length_floor)


def _halved_lengths(current: TrainConfig, length_floor: int):
    """Stages with max_seq_length halved while it stays >= `length_floor`; returns the last config."""
    while current.dataset.max_seq_length // 2 >= length_floor:
        current = current.model_copy(deep=True)
        current.dataset.max_seq_length //= 2
        yield current, "a shorter max_seq_length shrinks activations and logits linearly"
    return current


def _search(cfg: TrainConfig, pinned: set[str], env, limit: float, length_floor: int):
    """The first stage (with its best batch) whose estimate fits in `limit` GB, or None."""
    for stage, _ in _stages(cfg, pinned, env, length_floor):
        est = _estimate(stage, env, memory_cap=limit)
        candidate = _with_batch(stage, est.max_batch_size, pinned)
        if candidate is None:
            continue
        final = _estimate(candidate, env, memory_cap=limit)
        if final.fits:
            return candidate
    return None


def _diff(before: TrainConfig, after: TrainConfig) -> list[dict]:
    reasons = {
        "training.batch_size": "the largest per-device batch that fits; accumulation keeps the effective batch",
        "training.gradient_accumulation_steps": "raised with the smaller device batch, so each optimizer step sees the same examples",
        "training.gradient_checkpointing": "keeps only each layer's input and recomputes the rest in the backward pass (about 20-30% slower)",
        "dataset.max_seq_length": "a shorter sequence shrinks activations and logits linearly; longer examples are cut",
        "method.type": "QLoRA keeps the frozen base in 4-bit NF4, about a quarter of its 16-bit memory",
        "optimizer.type": "QLoRA's paged 8-bit AdamW: 2 bytes of state per trainable parameter",
    }
    a, b = before.to_dict(), after.to_dict()
    out = []
    for dotted, reason in reasons.items():
        section, key = dotted.split(".")
        old, new = a.get(section, {}).get(key), b.get(section, {}).get(key)
        if old != new:
            out.append({"field": dotted, "from": old, "to": new, "reason": f"to fit the memory: {reason}.", "source": M})
    return out


def smallest(cfg: TrainConfig, pinned: set[str], env, length_floor: int) -> TrainConfig:
    """The most reduced config the free knobs allow (batch 1, checkpointing, shortest length, QLoRA)."""
    last = cfg
    for stage, _ in _stages(cfg, pinned, env, length_floor):
        last = stage
    return _with_batch(last, 1, pinned) or last


def fit(cfg: TrainConfig, env: Environment | None, pinned: set[str], length_floor: int = LENGTH_FLOOR) -> FitResult:
    """`cfg` changed in the knobs not in `pinned` until its estimate fits the target's memory."""
    from trainer.planning.memory import EstimateError

    try:
        first = _estimate(cfg, env)
    except (EstimateError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return FitResult(cfg, None, error=str(exc))
    memory = first.device_memory_gb
    if memory is None:
        return FitResult(cfg, None, total_gb=first.total_gb)
    length_floor = min(length_floor, cfg.dataset.max_seq_length)
    try:
        found = _search(cfg, pinned, env, memory * (1 - MARGIN), length_floor)
        tight = False
        if found is None:
            found = _search(cfg, pinned, env, memory, length_floor)
            tight = found is not None
    except (EstimateError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return FitResult(cfg, first.fits, first.total_gb, memory, error=str(exc))
    if found is not None:
        est = _estimate(found, env)
        return FitResult(found, True, est.total_gb, memory, changes=_diff(cfg, found), tight=tight)
    # Nothing fits: keep the user's config as planned, and say what would fit.
    low = smallest(cfg, pinned, env, length_floor)
    need = _estimate(low, env).total_gb
    return FitResult(cfg, False, first.total_gb, memory, suggestions=suggestions(cfg, low, need, env, pinned))


def suggestions(cfg: TrainConfig, low: TrainConfig, need_gb: float, env, pinned: set[str]) -> list[str]:
    """What would fit: a GPU with enough memory, QLoRA, or a smaller model."""
    from assistant.plan import generic_gpu
    from trainer.planning.hardware import lookup_gpu

    out = []
    for name in SUGGESTED_GPUS:
        gpu = lookup_gpu(name)
        if gpu is not None and gpu.memory_gb * (1 - MARGIN) >= need_gb:
            out.append(f"a GPU with at least {need_gb / (1 - MARGIN):.0f} GB, e.g. {gpu.name} ({gpu.memory_gb:g} GB): "
                       f"the smallest setting that keeps your values needs {need_gb:g} GB")
            break
    else:
        out.append(f"several GPUs or a multi-GPU method: even the smallest setting needs {need_gb:g} GB")
    if cfg.method.type in ("lora", "full", "freeze") and low.method.type != "qlora":
        probe = low.model_copy(deep=True)
        probe.method.type = "qlora"
        if probe.optimizer.type == "adamw":
            probe.optimizer.type = "paged_adamw_8bit"
        try:
            gpu_env = env if (env is not None and env.has_cuda) else generic_gpu(low.hardware.device_memory_gb or 24)
            need_q = _estimate(probe, gpu_env).total_gb
            out.append(f"QLoRA (4-bit base, CUDA only): about {need_q:g} GB at batch 1")
        except ValueError:
            pass
    out.append("a smaller model (fewer parameters: the weights alone take about 2 bytes per parameter in 16-bit)")
    return out


__all__ = ["FitResult", "MARGIN", "fit", "smallest", "suggestions"]
