"""GPU catalog: a GPU name as people write it ("4090", "A100 80G", "a100-80gb", "T4") -> its memory.

Memory sizes are the vendor's published board memory in GB (decimal, as on the spec sheets); bf16
marks cards whose tensor cores run bfloat16 (Ampere and newer). Where one name covers several memory
sizes (A100 40/80 GB, V100 16/32 GB, RTX 3080 10/12 GB), a bare name maps to the smaller card, so an
estimate errs on the side of "does not fit"; add the size ("A100 80G") to pick the larger one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float
    bf16: bool = True
    vendor: str = "nvidia"


# key (normalised model name) -> {memory_gb: GPU}; the first entry is the default for a bare name.
_CATALOG: dict[str, list[GPU]] = {
    "3060": [GPU("RTX 3060", 12)],
    "3060ti": [GPU("RTX 3060 Ti", 8)],
    "3070": [GPU("RTX 3070", 8)],
    "3070ti": [GPU("RTX 3070 Ti", 8)],
    "3080": [GPU("RTX 3080", 10), GPU("RTX 3080 12GB", 12)],
    "3080ti": [GPU("RTX 3080 Ti", 12)],
    "3090": [GPU("RTX 3090", 24)],
    "3090ti": [GPU("RTX 3090 Ti", 24)],
    "4060": [GPU("RTX 4060", 8)],
    "4060ti": [GPU("RTX 4060 Ti", 8), GPU("RTX 4060 Ti 16GB", 16)],
    "4070": [GPU("RTX 4070", 12)],
    "4070super": [GPU("RTX 4070 Super", 12)],
    "4070ti": [GPU("RTX 4070 Ti", 12)],
    "4070tisuper": [GPU("RTX 4070 Ti Super", 16)],
    "4080": [GPU("RTX 4080", 16)],
    "4080super": [GPU("RTX 4080 Super", 16)],
    "4090": [GPU("RTX 4090", 24)],
    "5090": [GPU("RTX 5090", 32)],
    "a4000": [GPU("RTX A4000", 16)],
    "a4500": [GPU("RTX A4500", 20)],
    "a5000": [GPU("RTX A5000", 24)],
    "a6000": [GPU("RTX A6000", 48)],
    "6000ada": [GPU("RTX 6000 Ada", 48)],
    "a10": [GPU("A10", 24)],
    "a10g": [GPU("A10G", 24)],
    "a40": [GPU("A40", 48)],
    "a100": [GPU("A100 40GB", 40), GPU("A100 80GB", 80)],
    "a800": [GPU("A800 80GB", 80), GPU("A800 40GB", 40)],
    "h100": [GPU("H100 80GB", 80), GPU("H100 NVL 94GB", 94)],
    "h100nvl": [GPU("H100 NVL 94GB", 94)],
    "h800": [GPU("H800 80GB", 80)],
    "h200": [GPU("H200 141GB", 141)],
    "l4": [GPU("L4", 24)],
    "l40": [GPU("L40", 48)],
    "l40s": [GPU("L40S", 48)],
    "t4": [GPU("T4", 16, bf16=False)],
    "v100": [GPU("V100 16GB", 16, bf16=False), GPU("V100 32GB", 32, bf16=False)],
    "p100": [GPU("P100 16GB", 16, bf16=False)],
    "2080ti": [GPU("RTX 2080 Ti", 11, bf16=False)],
}

# Words that carry no identity: brand, product line, form factor.
_NOISE = re.compile(r"nvidia|geforce|tesla|quadro|rtx|gpu|sxm\d?|pcie|graphics|card", re.IGNORECASE)
# A memory size is its own token ("A100 80G", "a100-80gb"): the "10G" inside "A10G" is part of the name.
_MEMORY = re.compile(r"(?<![a-z0-9])(\d{1,3})\s*(?:gb|gib|g)\b", re.IGNORECASE)


def _normalise(name: str) -> tuple[str, float | None]:
    text = name.strip().lower()
    memory = None
    found = _MEMORY.search(text)
    if found:
        memory = float(found.group(1))
        text = text[: found.start()] + " " + text[found.end():]
    text = _NOISE.sub(" ", text)
    key = re.sub(r"[^a-z0-9]", "", text)
    return key, memory


def lookup_gpu(name: str | None) -> GPU | None:
    """The catalog GPU for a loosely written name, or None when the name is not known."""
    if not name or not name.strip():
        return None
    key, memory = _normalise(name)
    variants = _CATALOG.get(key)
    if variants is None:
        return None
    if memory is not None:
        for gpu in variants:
            if abs(gpu.memory_gb - memory) < 1:
                return gpu
        return None  # a size this card does not come in: better unknown than wrong
    return variants[0]
