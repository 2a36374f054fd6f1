"""The CUDA-only training paths, run for real: QLoRA, 8-bit and paged optimizers, and peak memory vs estimate.

For each case a short training run (a few optimizer steps on generated chat data) goes through
`trainer.training.recipe.train`, the code `tunepilot train` and jobs use. Printed per case: status, tokens/s,
measured peak (`torch.cuda.max_memory_allocated`, GiB) and tunepilot's estimate for the same config:
its `allocated_gb` (the same allocator statistic) is what the error compares; `total_gb` adds the CUDA
context and cached blocks, what the device must have free.
Needs a CUDA device with bitsandbytes; on a machine without one it says so and exits 0, because the
trainer refuses these configs there by design (see the qlora rules).

    python bench/cuda_paths.py --model /path/to/model-folder [--steps 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = [
    # (name, method, optimizer, batch)
    ("qlora + paged_adamw_8bit", "qlora", "paged_adamw_8bit", 4),
    ("qlora + adamw", "qlora", "adamw", 4),
    ("lora + adamw_8bit", "lora", "adamw_8bit", 4),
    ("lora + adamw", "lora", "adamw", 4),
    ("full + adamw_8bit", "full", "adamw_8bit", 2),
    ("full + adamw", "full", "adamw", 2),
]

_SENTENCES = ["LoRA trains small low-rank matrices.", "QLoRA keeps the base in 4-bit NF4.",
              "Paged optimizers move state to CPU memory under pressure.", "微调让模型学会固定的回答方式。",
              "The learning rate sets the step size.", "梯度累积可以模拟更大的 batch size。"]


def write_data(path: Path, n: int = 64) -> None:
    rows = []
    for i in range(n):
        q = " ".join(_SENTENCES[(i + j) % len(_SENTENCES)] for j in range(1 + i % 3))
        a = " ".join(_SENTENCES[(i * 3 + j) % len(_SENTENCES)] for j in range(2 + i % 5))
        rows.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")


def run_case(model: str, method: str, optimizer: str, batch: int, steps: int, data: Path, seq: int) -> dict:
    import torch

    from trainer.planning.memory import estimate
    from trainer.planning.schema import TrainConfig
    from trainer.training.recipe import train

    cfg = TrainConfig()
    cfg.model.base_model = model
    cfg.method.type = method
    cfg.optimizer.type = optimizer
    cfg.optimizer.learning_rate = 2e-4 if method != "full" else 2e-5
    cfg.dataset.path = str(data)
    cfg.dataset.max_seq_length = seq
    cfg.training.batch_size = batch
    cfg.training.max_steps = steps
    cfg.training.packing = True
    cfg.saving.save_every_n_steps = 10_000
    est = estimate(cfg).to_dict()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    started = time.time()
    try:
        with tempfile.TemporaryDirectory() as out:
            result = train(cfg, Path(out) / "run")
        seconds = time.time() - started
        peak_gb = torch.cuda.max_memory_allocated() / 2**30  # GiB, the estimate's unit
        predicted = est.get("allocated_gb", est["total_gb"])
        return {"status": result.status, "steps": result.global_step, "loss": result.train_loss,
                "tokens_per_s": round(result.trained_tokens / max(seconds, 1e-9), 1),
                "peak_gb": round(peak_gb, 3), "estimate_gb": predicted, "estimate_total_gb": est["total_gb"],
                "error_pct": round(100 * (predicted - peak_gb) / peak_gb, 1) if peak_gb else None}
    except Exception as exc:  # a bench reports every case, failures included
        return {"status": "error", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--cases", default="all", help="comma-separated case names, or all")
    parser.add_argument("--batch", type=int, default=0, help="use this batch size for every case (0: each case's own)")
    parser.add_argument("--rows", type=int, default=64, help="examples in the generated training file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("bench/cuda_paths.py: no CUDA device here; QLoRA and 8-bit optimizers need one (nothing measured).")
        return 0
    chosen = CASES if args.cases == "all" else [c for c in CASES if c[0] in args.cases.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        write_data(data, args.rows)
        for name, method, optimizer, batch in chosen:
            results[name] = run_case(args.model, method, optimizer, args.batch or batch, args.steps, data, args.seq)
            if not args.json:
                print(name, json.dumps(results[name], ensure_ascii=False), flush=True)
    if args.json:
        print(json.dumps({"device": torch.cuda.get_device_name(0), "results": results}, indent=2))
    else:
        print(f"\ndevice: {torch.cuda.get_device_name(0)}")
        print(f"{'case':28} {'status':10} {'tok/s':>9} {'peak GiB':>8} {'est GiB':>8} {'err %':>6}")
        for name, r in results.items():
            print(f"{name:28} {r['status']:10} {r.get('tokens_per_s', ''):>9} {r.get('peak_gb', ''):>8} "
                  f"{r.get('estimate_gb', ''):>8} {r.get('error_pct', ''):>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
