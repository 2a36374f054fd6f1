"""Rows per second of the evals runner's generation: batched (left-padded) vs one row at a time.

Usage (the default model must be provisioned in $TUNEPILOT_HOME, e.g. `tunepilot models pull-default`):

    TUNEPILOT_HOME=/tmp/tp-home .venv/bin/python bench/eval_throughput.py [--rows 32] [--batch-size 16] \
        [--max-new-tokens 24] [--model gemma-3-270m] [--threads N]

Both modes run in the same process on the same prompts (mixed lengths, English and Chinese), after a
warm-up call, through `evals.providers.LocalProvider` — the code path `tunepilot eval run` uses.
Greedy decoding with a fixed token budget. Prints rows/s for each mode, generated tokens/s and the
speed-up. A batch ends when its longest reply ends, so batching trades some wasted steps on short
replies for far fewer forward passes.

Measured on the shared 2-core build machine (load average ~14 from other jobs), gemma-3-270m in
bf16, 32 rows, 24 new tokens, `--threads 1`: batched 0.90 rows/s vs one-by-one 0.09 rows/s, 10.4x.
On an oversubscribed machine pass `--threads 1`: with two torch threads each small matmul waits for
both threads to be scheduled, and a single linear layer took ~20 ms instead of ~1 ms.
"""

from __future__ import annotations

import argparse
import os
import time

PROMPTS = [
    "What is LoRA?",
    "用一句话解释什么是微调。",
    "Explain, in two sentences, why a learning rate that is too high makes training loss jump around instead of going down.",
    "QLoRA 和 LoRA 有什么区别？请简要说明 4 位量化的作用，以及它为什么能减少显存占用。",
    "Name one optimizer.",
    "List three things you should check in a fine-tuning dataset before training, and say why each matters.",
    "什么是梯度累积？",
    "Translate to French: the model is learning.",
    "Write a short haiku about GPUs running out of memory during a long fine-tuning job at night.",
    "学习率通常设为多少？",
    "Why do we use a validation split?",
    "请列出三个常见的评估指标，并分别说明它们适合什么任务，例如分类、摘要或翻译。",
    "Hi!",
    "Summarise what an adapter is in one line.",
    "在中文数据上评估模型时，为什么 ROUGE 要按字计算？",
    "Give an example of a JSON object with a name and an age field.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from evals.providers import LocalProvider
    from evals.spec import GenerationSpec, ProviderSpec
    from trainer.models.generation import build_messages

    provider = LocalProvider(ProviderSpec(id=args.model), device="cpu")
    loaded = provider.loaded()
    tok = loaded.tokenizer
    rows = [build_messages(PROMPTS[i % len(PROMPTS)]) for i in range(args.rows)]
    gen = GenerationSpec(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)

    provider.generate(rows[:2], gen)  # warm-up: first-call allocations and kernel selection

    def run(batch_size: int) -> tuple[float, int, int]:
        start = time.perf_counter()
        texts, errors = [], 0
        for i in range(0, len(rows), batch_size):
            for result in provider.generate(rows[i:i + batch_size], gen):
                texts.append(result.text or "")
                errors += result.error is not None
        elapsed = time.perf_counter() - start
        tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
        return elapsed, tokens, errors

    print(f"model={args.model} dtype={next(loaded.model.parameters()).dtype} rows={args.rows} "
          f"max_new_tokens={args.max_new_tokens} torch_threads={torch.get_num_threads()} cpus={os.cpu_count()}")
    batched_s, batched_tok, batched_err = run(args.batch_size)
    single_s, single_tok, single_err = run(1)
    print(f"batched (batch {args.batch_size}): {batched_s:7.2f} s  {args.rows / batched_s:6.2f} rows/s  "
          f"{batched_tok / batched_s:7.1f} generated tokens/s  errors={batched_err}")
    print(f"one-by-one:         {single_s:7.2f} s  {args.rows / single_s:6.2f} rows/s  "
          f"{single_tok / single_s:7.1f} generated tokens/s  errors={single_err}")
    print(f"speed-up (rows/s): {single_s / batched_s:.2f}x  (target >= 4x at batch 16)")


if __name__ == "__main__":
    main()
