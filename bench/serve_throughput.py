"""Throughput of `tunepilot serve`: requests/s and latency p50 of short chat completions.

Starts the real server (`tunepilot serve` as a subprocess on a free loopback port, so the clients
do not share its interpreter) on the default model and sends short chat completions (max_tokens 16)
with the official `openai` client from 1 and 4 concurrent clients, with micro-batching off
(`--max-batch 1`) and on (`--max-batch 8`): both servers run side by side and the measurements
alternate between them, so changes in the machine's load hit both alike.

    TUNEPILOT_HOME=/tmp/tp-home .venv/bin/python bench/serve_throughput.py
    .venv/bin/python bench/serve_throughput.py --model ./my-model --requests 24 --json

Every request generates exactly max_tokens tokens (`ignore_eos`), so runs compare like with like;
`--natural` lets replies stop at end-of-turn instead.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPTS = [
    "What is LoRA?", "Explain the learning rate in one sentence.", "What does QLoRA quantize?",
    "Name one optimizer.", "Why use gradient checkpointing?", "What is an epoch?",
    "How big is a LoRA adapter?", "What is overfitting?",
]


def run_clients(base_url: str, model: str, clients: int, requests: int, max_tokens: int, natural: bool) -> dict:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=600)
    latencies: list[float] = []
    tokens: list[int] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            start = time.perf_counter()
            reply = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                max_tokens=max_tokens, temperature=0, extra_body={} if natural else {"ignore_eos": True})
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                tokens.append(reply.usage.completion_tokens)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"clients": clients, "requests": len(latencies), "seconds": wall, "tokens": sum(tokens),
            "latencies": latencies, "requests_per_s": round(len(latencies) / wall, 3),
            "p50_latency_s": round(statistics.median(latencies), 3)}


@contextmanager
def served(max_batch: int, threads: int | None = None) -> Iterator[str]:
    """`tunepilot serve` in a subprocess; yields its base_url once /health answers."""
    from trainer.server.background import free_port, wait_until_serving

    port = free_port()
    command = [sys.executable, "-m", "tunepilot.cli.main", "serve", "--port", str(port), "--max-batch", str(max_batch),
               "--log-level", "warning"]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op threads in the server
    proc = subprocess.Popen(command, cwd=str(REPO), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        try:
            wait_until_serving(proc, f"http://127.0.0.1:{port}", timeout=300)
        except (RuntimeError, TimeoutError) as exc:
            raise SystemExit(str(exc)) from None
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m", help="Model id (default: the built-in default).")
    parser.add_argument("--requests", type=int, default=12, help="Requests per client count, per round (default 12).")
    parser.add_argument("--rounds", type=int, default=2, help="Alternating rounds over both servers (default 2).")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in each server (OMP_NUM_THREADS); 1 helps on a busy machine.")
    parser.add_argument("--natural", action="store_true", help="Let replies stop at end-of-turn.")
    parser.add_argument("--json", action="store_true", help="Print one JSON document instead of the table.")
    args = parser.parse_args()

    import httpx

    # Both servers run side by side and the measurements alternate between them in rounds, so a
    # change in the machine's load (shared CPUs) hits both settings alike.
    settings = {1: "off", 8: "on (max 8)"}
    totals: dict[tuple[int, int], dict] = {}
    with served(1, args.threads) as off_url, served(8, args.threads) as on_url:
        urls = {1: off_url, 8: on_url}
        for url in urls.values():
            run_clients(url, args.model, 1, 2, args.max_tokens, args.natural)  # load the model, warm up
        for round_no in range(args.rounds):
            for clients in args.clients:
                for max_batch, url in urls.items():
                    before = httpx.get(f"{url}/tunepilot/status").json()["generation"]
                    row = run_clients(url, args.model, clients, args.requests, args.max_tokens, args.natural)
                    after = httpx.get(f"{url}/tunepilot/status").json()["generation"]
                    total = totals.setdefault((max_batch, clients), {"seconds": 0.0, "requests": 0, "tokens": 0,
                                                                     "batches": 0, "latencies": []})
                    total["seconds"] += row["seconds"]
                    total["requests"] += row["requests"]
                    total["tokens"] += row["tokens"]
                    total["latencies"] += row["latencies"]
                    total["batches"] += after["batches"] - before["batches"]
                    print(f"  round {round_no + 1}: batching {settings[max_batch]:>10}, {clients} client(s): "
                          f"{row['requests_per_s']} req/s, p50 {row['p50_latency_s']} s", file=sys.stderr)
    rows = []
    for (max_batch, clients), t in sorted(totals.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        latencies = sorted(t["latencies"])
        rows.append({"micro_batching": settings[max_batch], "clients": clients, "requests": t["requests"],
                     "seconds": round(t["seconds"], 2), "requests_per_s": round(t["requests"] / t["seconds"], 3),
                     "p50_latency_s": round(statistics.median(latencies), 3),
                     "p95_latency_s": round(latencies[max(0, int(0.95 * len(latencies)) - 1)], 3),
                     "completion_tokens_per_s": round(t["tokens"] / t["seconds"], 1),
                     "mean_batch_size": round(t["requests"] / t["batches"], 2) if t["batches"] else None})

    import torch

    from trainer.models.device import pick_device

    info = {"model": args.model, "device": pick_device(), "torch_threads": args.threads or torch.get_num_threads(),
            "server": "tunepilot serve (subprocess, loopback)",
            "cpu_count": os.cpu_count(), "max_tokens": args.max_tokens,
            "ignore_eos": not args.natural, "results": rows}
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"\nserve throughput: {args.model} on {info['device']} ({info['torch_threads']} torch threads, "
          f"{info['cpu_count']} CPUs), max_tokens={args.max_tokens}, {args.requests * args.rounds} requests per row "
          f"({args.rounds} alternating rounds)")
    header = f"{'batching':>12} {'clients':>7} {'req/s':>7} {'p50 s':>7} {'p95 s':>7} {'tok/s':>7} {'batch':>6}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['micro_batching']:>12} {r['clients']:>7} {r['requests_per_s']:>7} {r['p50_latency_s']:>7} "
              f"{r['p95_latency_s']:>7} {r['completion_tokens_per_s']:>7} {r['mean_batch_size'] or '-':>6}")


if __name__ == "__main__":
    main()
