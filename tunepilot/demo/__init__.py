"""The end-to-end demo: train a persona, chat with it, evaluate base vs fine-tuned.

Bundled data (written for this project): `persona_train.jsonl` — 60 Chinese chat examples of a
librarian persona, 月儿 of 星河书屋, who always introduces herself with one fixed line — and
`persona_eval.csv` — 15 unseen ways of asking who she is, each expecting that line. The base
model has never heard of her, so the eval shows whether fine-tuning taught the persona.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

DEMO_DIR = Path(__file__).resolve().parent
DEMO_CONFIG = DEMO_DIR / "demo.toml"
EVAL_FILE = DEMO_DIR / "persona_eval.csv"
PERSONA_LINE = "我是月儿，星河书屋的图书管理员。"
CHAT_PROMPT = "你好，你是谁？"


def demo_config(epochs: float | None = None):
    from trainer.run_config import load_run_config

    cfg = load_run_config(DEMO_CONFIG)
    if epochs is not None:
        cfg.training.epochs = epochs
    return cfg


def _eval_rows() -> list[dict]:
    import csv

    with open(EVAL_FILE, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def evaluate(base: str, tuned: str, echo: Callable[[str], None], progress: bool = True) -> dict:
    """Score both models on the eval set: with evals.runner when available, else directly."""
    try:
        from evals.runner import run_eval
        from evals.spec import EvalSpec
    except ImportError:
        run_eval = None
    if run_eval is not None:
        spec = EvalSpec(dataset=str(EVAL_FILE), input_column="input", expected_column="expected",
                        providers=[{"id": base, "label": "base"}, {"id": tuned, "label": "fine-tuned"}],
                        scorers=["contains", "chrf"], generation={"max_new_tokens": 40, "batch_size": 8})
        report = run_eval(spec, progress=progress)
        for name, info in report.get("models", {}).items():
            echo(f"  {name}: " + ", ".join(f"{k}={v:.3f}" for k, v in info.get("scores", {}).items()
                                          if isinstance(v, (int, float))))
        return {"engine": "evals.runner", "report": report}
    return _evaluate_directly(base, tuned, echo)


def _evaluate_directly(base: str, tuned: str, echo: Callable[[str], None]) -> dict:
    from trainer.models.generation import build_messages, generate, load

    rows = _eval_rows()
    batch = [build_messages(r["input"]) for r in rows]
    answers = {name: generate(load(name), batch, max_new_tokens=40) for name in (base, tuned)}
    scores = {name: sum(r["expected"] in a for r, a in zip(rows, answers[name])) / len(rows) for name in answers}
    for i, r in enumerate(rows):
        echo(f"  Q: {r['input']}\n    base:       {answers[base][i]}\n    fine-tuned: {answers[tuned][i]}")
    echo(f"  says the persona line: base {scores[base]:.0%}, fine-tuned {scores[tuned]:.0%}")
    return {"engine": "direct", "contains_expected": scores,
            "rows": [{"input": r["input"], "base": answers[base][i], "fine_tuned": answers[tuned][i]} for i, r in enumerate(rows)]}


def run_demo(train_fn: Callable, epochs: float | None = None, output_dir: str | None = None, quiet: bool = False,
             echo: Callable[[str], None] = print) -> dict:
    """train -> chat-model -> eval. `train_fn(cfg, output_dir)` trains and returns a summary with `fine_tuned_model`."""
    from trainer.models.generation import chat

    cfg = demo_config(epochs)
    base = cfg.model.base_model
    echo(f"1/3 Training {base} on {Path(cfg.dataset.path).name} (LoRA, {cfg.training.epochs:g} epochs)")
    summary = train_fn(cfg, output_dir)
    tuned = summary["fine_tuned_model"]
    echo(f"    -> {tuned} (loss {summary['losses'][0]['loss']:.2f} -> {summary['train_loss']:.2f}, {summary['duration_s']:.0f} s)")
    echo(f"2/3 chat-model {tuned} --prompt {CHAT_PROMPT!r}")
    reply_base, reply_tuned = chat(base, CHAT_PROMPT, max_new_tokens=40), chat(tuned, CHAT_PROMPT, max_new_tokens=40)
    echo(f"    base:       {reply_base}\n    fine-tuned: {reply_tuned}")
    echo(f"3/3 Eval on {EVAL_FILE.name} (15 unseen questions; expected: {PERSONA_LINE})")
    evaluation = evaluate(base, tuned, echo, progress=not quiet)
    return {"fine_tuned_model": tuned, "train": {k: summary[k] for k in ("output_dir", "final_path", "train_loss",
                                                                          "duration_s", "global_step", "peak_memory_mb")},
            "chat": {"prompt": CHAT_PROMPT, "base": reply_base, "fine_tuned": reply_tuned}, "eval": evaluation}
