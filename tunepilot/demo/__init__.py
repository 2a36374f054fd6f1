"""The end-to-end demo: train a persona, chat with it, evaluate base vs fine-tuned.

Bundled data (written for this project): `persona_train.jsonl` — 60 Chinese chat examples of a
librarian persona, 月儿 of 星河书屋, who always introduces herself with one fixed line — and
`persona_eval.csv` — 15 unseen ways of asking who she is, each expecting that line. The base
model has never heard of her, so the eval shows whether fine-tuning taught the persona.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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


def evaluate(base: str, tuned: str, echo: Callable[[str], None], progress: bool = True) -> dict:
    """Score both models on the eval set with the eval harness (contains + chrF), echoing each model's scores."""
    from evals.runner import run_eval
    from evals.spec import EvalSpec

    spec = EvalSpec(dataset=str(EVAL_FILE), input_column="input", expected_column="expected",
                    providers=[{"id": base, "label": "base"}, {"id": tuned, "label": "fine-tuned"}],
                    scorers=["contains", "chrf"], generation={"max_new_tokens": 40, "batch_size": 8})
    report = run_eval(spec, progress=progress)
    for name, info in report.get("models", {}).items():
        echo(f"  {name}: " + ", ".join(f"{k}={v:.3f}" for k, v in info.get("scores", {}).items()
                                      if isinstance(v, (int, float))))
    return {"engine": "evals.runner", "report": report}


def run_demo(train_fn: Callable, epochs: float | None = None, output_dir: str | None = None, quiet: bool = False,
             echo: Callable[[str], None] = print) -> dict:
    """train -> chat-model -> eval. `train_fn(cfg, output_dir)` trains and finishes the run (registers the model,
    merges it when the config asks: `tunepilot.cli.train.run_foreground`, which calls `finish_run`) and returns
    a summary with `fine_tuned_model`."""
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
