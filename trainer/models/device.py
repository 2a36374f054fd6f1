"""Where a model runs and in which precision: the one device/dtype policy.

Everything that loads, trains or plans a model asks here: generation and the API server's model
pool (which device, which dtype to load in, how much memory there is), training (the precision
each method trains in) and the config planner (`trainer.planning.memory` and the launch rules in
`trainer.planning.rules`, which judge a config against an `Environment`: this machine, or a
catalogue GPU the config names).

- device `auto`: a CUDA GPU, else Apple MPS, else the CPU.
- dtype `auto`: on CUDA bfloat16 where the GPU supports it, else float16. On the CPU bfloat16 only
  where the CPU has AVX512-BF16 or AMX units: there bf16 matmuls are several times faster than
  float32, while on AVX2-only CPUs (no bf16 units, so every op is emulated) they are about 300x
  slower, so the choice must be made per machine. float32 on MPS.
- training precision (`training_precision`): adapters train best in float32 while the frozen base
  can run in the fast dtype, so LoRA/QLoRA load the base in it with float32 adapters; full and
  freeze fine-tuning update the base weights, so they keep float32 master weights and autocast to
  the fast 16-bit dtype instead.

torch is imported inside the functions: the planner imports this module to size a config, which
must not cost a torch import.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

GIB = 1024**3


# ---------------------------------------------------------------- what the machine has

@dataclass(frozen=True)
class Environment:
    """What the machine (or the target GPU) offers; `detect()` probes this machine."""

    has_cuda: bool = False
    has_bitsandbytes: bool = False
    has_mps: bool = False
    cuda_bf16: bool = False
    cuda_memory_gb: float | None = None
    description: str = "this machine"

    @staticmethod
    def detect() -> Environment:
        return _detect()

    @staticmethod
    def for_gpu(gpu) -> Environment:
        """A machine with the catalogue GPU `gpu` (name, memory_gb, bf16) and bitsandbytes installable."""
        return Environment(has_cuda=True, has_bitsandbytes=True, cuda_bf16=gpu.bf16,
                           cuda_memory_gb=float(gpu.memory_gb), description=f"the target GPU ({gpu.name})")


@lru_cache(maxsize=1)
def _detect() -> Environment:
    import importlib.util

    import torch

    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    has_cuda = torch.cuda.is_available()
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    memory = bf16 = None
    if has_cuda:
        memory = round(torch.cuda.get_device_properties(0).total_memory / 1024**3, 1)
        bf16 = torch.cuda.is_bf16_supported()
    return Environment(has_cuda=has_cuda, has_bitsandbytes=has_bnb, has_mps=has_mps,
                       cuda_bf16=bool(bf16), cuda_memory_gb=memory,
                       description="this machine" + ("" if has_cuda else " (no CUDA GPU)"))


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 matmul units (AVX512-BF16 or AMX); see the module docstring."""
    return _has_bf16_units(_cpu_flags())


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:  # not Linux: no way to tell, and float32 is never the slow choice
        return ""


def _has_bf16_units(flags: str) -> bool:
    return "avx512_bf16" in flags or "amx_bf16" in flags


# ---------------------------------------------------------------- device and dtype

def pick_device(requested: str = "auto", env: Environment | None = None) -> str:
    """`requested` as is, or for `auto` the best device `env` (default: this machine) has."""
    if requested != "auto":
        return requested
    env = env or Environment.detect()
    if env.has_cuda:
        return "cuda"
    return "mps" if env.has_mps else "cpu"


def dtype_name(device: str, requested: str = "auto", env: Environment | None = None) -> str:
    """The dtype ("bfloat16" | "float16" | "float32") a model on `device` runs in; `auto` as the module says."""
    if requested != "auto":
        return requested
    if device == "cuda":
        env = env or Environment.detect()
        # Planning for CUDA on a machine without one, with no GPU named: assume a recent (bf16) GPU.
        return "bfloat16" if (env.cuda_bf16 or not env.has_cuda) else "float16"
    if device == "cpu":
        return "bfloat16" if cpu_has_fast_bf16() else "float32"
    return "float32"


def pick_dtype(device: str, requested: str = "auto", env: Environment | None = None):
    """`dtype_name` as a torch dtype, for `from_pretrained(dtype=...)`."""
    import torch

    return getattr(torch, dtype_name(device, requested, env))


# ---------------------------------------------------------------- memory

def memory_gb(device: str, env: Environment | None = None) -> float | None:
    """Total memory of `device`: the GPU's on CUDA (None when unknown), else the machine's RAM (GiB)."""
    if device == "cuda":
        return (env or Environment.detect()).cuda_memory_gb
    import psutil

    return round(psutil.virtual_memory().total / GIB, 1)


def free_memory_bytes(device: str) -> int:
    """Memory free on `device` now: GPU memory on CUDA, else the machine's available RAM."""
    if device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def release_cached_memory(device: str) -> None:
    """Hand memory freed by dropped models back (CUDA's caching allocator keeps it otherwise)."""
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


# ---------------------------------------------------------------- training precision

@dataclass
class Precision:
    load_dtype: torch.dtype  # dtype of the base weights in memory
    autocast: str | None  # "bf16" / "fp16" for Trainer mixed precision, or None


def training_precision(method_type: str, device: str, requested: str = "auto") -> Precision:
    """How `method_type` (lora / qlora / full / freeze) trains on `device`; see the module docstring."""
    import torch

    fast = pick_dtype(device, requested)
    if method_type in ("lora", "qlora"):
        if fast == torch.float16 and device == "cpu":
            fast = torch.float32  # fp16 matmuls are slow and lossy on CPU
        return Precision(load_dtype=fast, autocast=None)
    if fast == torch.bfloat16:
        return Precision(load_dtype=torch.float32, autocast="bf16")
    if fast == torch.float16 and device == "cuda":
        return Precision(load_dtype=torch.float32, autocast="fp16")
    return Precision(load_dtype=torch.float32, autocast=None)
