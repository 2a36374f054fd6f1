"""Memory estimate vs measured peak for real training runs of the default model (Gemma 3 270M).

Runs LoRA and full fine-tuning at two batch sizes each, a few optimizer steps per run, each in its own
subprocess (so one run's memory does not linger into the next), and prints a table of the estimate
(`trainer.planning.memory.estimate`) against the measured peak:
- CPU: the child's peak resident set size (sampled every few ms during the run, and the kernel's
  ru_maxrss high-water mark), which is what the estimate's total (overhead included) predicts;
- GPU: torch.cuda.max_memory_allocated, compared with the estimate's `allocated_gb` (total less its
  overhead term: the allocator statistic does not count the CUDA context or cached-but-free blocks).
The estimate is given the same data file the run trains on, so it sizes the micro-batch from the data
(trainer.planning.memory_data) the way the trainer does.

Runner: `trainer.training.recipe.train` by default (the real trainer, on generated chat data whose every
example is longer than max_seq_length, matching the estimate's worst case); `--runner plain` uses a
plain torch loop: the same model, peft LoRA, AdamW, autocast, random tokens.

    TUNEPILOT_HOME=/tmp/tp-home .venv/bin/python bench/memory_estimate.py [--seq 256] [--steps 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = [("lora", 1), ("lora", 4), ("full", 1), ("full", 4)]


def build_config(method: str, batch: int, seq: int, steps: int, data_path: str, out_dir: str, device: str):
    from trainer.planning.presets import preset

    cfg = preset(method)
    cfg.dataset.path = data_path
    cfg.dataset.max_seq_length = seq
    cfg.training.batch_size = batch
    cfg.training.gradient_accumulation_steps = 1
    cfg.training.max_steps = steps
    cfg.training.device = device
    cfg.training.gradient_checkpointing = False
    cfg.saving.output_dir = out_dir
    cfg.saving.save_every_n_steps = 10_000
    return cfg


def write_data(path: Path, rows: int, seq: int) -> None:
    """Chat rows whose answers are longer than `seq` tokens, so every example is truncated to the maximum."""
    words = "fine tuning adapts a pretrained model to new data with a small learning rate".split()
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            answer = " ".join(words[(i + k) % len(words)] for k in range(seq * 2))
            fh.write(json.dumps({"messages": [{"role": "user", "content": f"Explain item {i}."},
                                              {"role": "assistant", "content": answer}]}) + "\n")


class PeakRSS:
    """Samples this process's RSS in a thread; `peak` is the largest value seen (bytes)."""

    def __init__(self, interval: float = 0.005):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def plain_measure(case: dict) -> dict:
    """forward/backward/AdamW on random tokens, the work of one trainer step without its data code.

    Needs only torch, transformers and peft (no tunepilot imports), so it also runs on a bare GPU box.
    `case`: model_dir (config.json, with or without weights), method (lora|full), batch, seq, steps,
    dtype (the compute dtype), gradient_checkpointing, lora_r/alpha/dropout. Mirrors trainer.training.methods:
    LoRA loads the base in the compute dtype without autocast; full loads float32 weights and runs
    under autocast when the compute dtype is 16-bit.
    """
    import torch
    import torch.nn.functional as F
    from transformers import AutoConfig, AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    compute = getattr(torch, case["dtype"])
    full = case["method"] == "full"
    load_dtype = torch.float32 if full else compute
    autocast = full and compute != torch.float32
    folder = Path(case["model_dir"])
    if any(folder.glob("*.safetensors")):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=load_dtype)
    else:  # shape-only check: random weights of the same architecture use the same memory
        with torch.device(device):  # initialise on the device: 7B on the CPU would take minutes
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=load_dtype)
    model.to(device)
    if case.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if not full:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=case.get("lora_r", 16), lora_alpha=case.get("lora_alpha", 32),
                                                 lora_dropout=case.get("lora_dropout", 0.05),
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    vocab = model.config.vocab_size
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(case.get("steps", 2)):
        ids = torch.randint(4, vocab, (case["batch"], case["seq"]), device=device)
        with torch.autocast(device_type=device, dtype=compute, enabled=autocast):
            logits = model(input_ids=ids, use_cache=False).logits
        # as trainer.training.loop: cross-entropy on float32 logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), ids.reshape(-1))
        loss.backward()
        del logits, loss
        opt.step()
        opt.zero_grad(set_to_none=True)
    peak = torch.cuda.max_memory_allocated() / 1024**3 if device == "cuda" else None
    del model, opt, params
    if device == "cuda":
        torch.cuda.empty_cache()
    return {**case, "device": device, "cuda_max_allocated_gb": peak}


def grid(args) -> None:
    """Measure every case of a JSON list in this process (GPU) and write the results."""
    cases = json.loads(Path(args.grid).read_text())
    results = []
    for case in cases:
        try:
            results.append(plain_measure(case))
        except Exception as exc:  # an OOM in one case must not lose the others
            results.append({**case, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
        print(json.dumps(results[-1]), flush=True)
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    Path(args.out).write_text(json.dumps(results, indent=2))


def child(args) -> None:
    """One measured run; prints a JSON line with the peak."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(tempfile.mkdtemp(prefix="tp-membench-"))
    data = work / "train.jsonl"
    write_data(data, rows=max(16, args.batch * (args.steps + 1)), seq=args.seq)
    cfg = build_config(args.method, args.batch, args.seq, args.steps, str(data), str(work / "out"), device)
    runner = args.runner
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    steps_seen: list[int] = []
    failure = None

    def on_event(event: dict) -> None:
        if event.get("type") == "metrics" and (event.get("data") or {}).get("step"):
            steps_seen.append(int(event["data"]["step"]))

    with PeakRSS() as rss:
        if runner == "trainer":
            from trainer.training.recipe import train

            try:
                train(cfg, str(work / "out"), on_event=on_event)
            except Exception as exc:
                # A failure after the last step (saving, the job card) leaves a valid peak; one before it does not.
                if max(steps_seen, default=0) < args.steps:
                    raise
                failure = f"{type(exc).__name__} after training: {exc}"
        else:
            from trainer.models.registry import resolve
            from trainer.planning.memory import compute_dtype

            plain_measure({"model_dir": str(resolve(cfg.model.base_model).base_path), "method": args.method,
                           "batch": args.batch, "seq": args.seq, "steps": args.steps,
                           "dtype": compute_dtype(cfg, device)})
    result = {
        "runner": runner,
        "device": device,
        "peak_rss_gb": max(rss.peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 1024**3,
        "cuda_max_allocated_gb": torch.cuda.max_memory_allocated() / 1024**3 if device == "cuda" else None,
        "note": failure,
    }
    print("RESULT " + json.dumps(result))


def run_case(method: str, batch: int, args) -> dict:
    from trainer.planning.memory import estimate

    cmd = [sys.executable, __file__, "--child", "--method", method, "--batch", str(batch),
           "--seq", str(args.seq), "--steps", str(args.steps), "--runner", args.runner]
    started = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"method": method, "batch": batch, "error": " | ".join(tail)}
    measured = json.loads(line[len("RESULT "):])
    device = measured["device"]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"  # the child's data, written the same way
        write_data(data, rows=max(16, batch * (args.steps + 1)), seq=args.seq)
        cfg = build_config(method, batch, args.seq, args.steps, str(data), "", device)
        est = estimate(cfg)
    if device == "cuda":
        predicted = est.allocated_gb
        actual = measured["cuda_max_allocated_gb"]
    else:
        predicted, actual = est.total_gb, measured["peak_rss_gb"]
    return {
        "method": method, "batch": batch, "seq": args.seq, "runner": measured["runner"], "device": device,
        "dtype": est.dtype, "estimate_gb": round(predicted, 3), "measured_gb": round(actual, 3),
        "error_pct": round(100 * (predicted - actual) / actual, 1), "seconds": round(time.time() - started, 1),
        "breakdown": est.breakdown, "batch_shape": est.shape, "note": measured.get("note"),
    }


def case_config(case: dict):
    """The TrainConfig a plain-loop case corresponds to (for the estimate)."""
    from trainer.planning.presets import preset

    cfg = preset(case["method"])
    cfg.model.base_model = case.get("estimate_model", case["model_dir"])
    cfg.model.dtype = case["dtype"]
    cfg.training.batch_size = case["batch"]
    cfg.training.gradient_checkpointing = bool(case.get("gradient_checkpointing"))
    cfg.training.device = "cuda" if case.get("device") == "cuda" else "cpu"
    cfg.dataset.max_seq_length = case["seq"]
    return cfg


def compare(path: str) -> None:
    """Estimate vs measured for --grid results (GPU: max_memory_allocated vs the estimate less overhead)."""
    from trainer.planning.memory import estimate

    print(f"{'model':14} {'method':6} {'batch':>5} {'seq':>5} {'gc':>3} {'estimate':>9} {'measured':>9} {'error':>7}")
    errors = []
    for case in json.loads(Path(path).read_text()):
        name = case.get("estimate_model", Path(case["model_dir"]).name)
        if case.get("error") or case.get("cuda_max_allocated_gb") is None:
            print(f"{name:14} {case['method']:6} {case['batch']:>5} {case['seq']:>5}  FAILED {case.get('error', 'no GPU figure')}")
            continue
        est = estimate(case_config(case))
        predicted = est.allocated_gb
        actual = case["cuda_max_allocated_gb"]
        errors.append(100 * (predicted - actual) / actual)
        print(f"{name:14} {case['method']:6} {case['batch']:>5} {case['seq']:>5} {'on' if case.get('gradient_checkpointing') else 'off':>3} "
              f"{predicted:8.2f}G {actual:8.2f}G {errors[-1]:+6.1f}%")
    if errors:
        print(f"\nworst |error| {max(abs(e) for e in errors):.1f}% over {len(errors)} runs (target: within 15%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="lora")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--runner", choices=["trainer", "plain"], default="trainer")
    parser.add_argument("--cases", default=",".join(f"{m}:{b}" for m, b in CASES),
                        help="comma-separated method:batch pairs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--grid", help="JSON list of plain-loop cases to measure in one process (a GPU box)")
    parser.add_argument("--out", default="grid-results.json", help="where --grid writes its results")
    parser.add_argument("--compare", help="results of --grid: print them against the estimates")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.grid:
        grid(args)
        return
    if args.compare:
        compare(args.compare)
        return
    rows = []
    for pair in args.cases.split(","):
        method, batch = pair.split(":")
        rows.append(run_case(method, int(batch), args))
        if not args.json:
            r = rows[-1]
            if "error" in r:
                print(f"{method:5} batch {batch:>3}: FAILED {r['error']}", flush=True)
            else:
                print(f"{r['method']:5} batch {r['batch']:>3} seq {r['seq']:>5} {r['runner']:7} {r['device']:4} {r['dtype']:8} "
                      f"estimate {r['estimate_gb']:7.3f} GB  measured {r['measured_gb']:7.3f} GB  "
                      f"error {r['error_pct']:+6.1f}%  ({r['seconds']} s)" + (f"  [{r['note']}]" if r.get("note") else ""), flush=True)
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
        return
    ok = [r for r in rows if "error" not in r]
    if ok:
        worst = max(abs(r["error_pct"]) for r in ok)
        print(f"\nworst |error| {worst:.1f}% over {len(ok)} runs (target: within 15%)")


if __name__ == "__main__":
    main()
