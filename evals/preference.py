"""Pairwise preference metrics: does a model rank the chosen reply above the rejected one?

For every pair of a preference eval set (any layout `trainer.data.preference` reads), the summed log-probability
of each reply given the prompt is computed with teacher forcing, split into prompt and reply tokens exactly as
the DPO trainer splits them. Per model:

- `preference_accuracy`: the share of pairs with log p(chosen) > log p(rejected);
- `logp_margin`: the mean of log p(chosen) - log p(rejected), in nats (DPO raises it relative to the reference).

`run_eval` (evals.runner) hands a spec whose dataset is a preference set here, so `tunepilot eval run` on
base and tuned models gives both, and `delta` compares each model with the first (the base).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from evals.errors import EvalError

METRICS = ("preference_accuracy", "logp_margin")
_DESCRIPTIONS = {
    "preference_accuracy": "share of pairs where the chosen reply has a higher log-probability than the rejected one",
    "logp_margin": "mean log p(chosen) - log p(rejected) over the pairs, in nats",
}


@dataclass
class PairScores:
    chosen: list[float]  # summed log-probability of each chosen reply
    rejected: list[float]

    @property
    def accuracy(self) -> float:
        return sum(c > r for c, r in zip(self.chosen, self.rejected)) / max(len(self.chosen), 1)

    @property
    def margin(self) -> float:
        return sum(c - r for c, r in zip(self.chosen, self.rejected)) / max(len(self.chosen), 1)

    def to_dict(self) -> dict:
        return {"pairs": len(self.chosen), "preference_accuracy": round(self.accuracy, 4),
                "logp_margin": round(self.margin, 4)}


def is_preference_set(path: str | Path) -> bool:
    from trainer.data.preference import PREFERENCE, is_preference_file

    return Path(path).expanduser().is_file() and is_preference_file(path) == PREFERENCE


def load_pairs(path: str | Path, limit: int | None = None) -> list[dict]:
    """The pairs of a preference file in TRL's shape; a bad row is an EvalError naming its line."""
    from trainer.data.formats import DataError
    from trainer.data.preference import PREFERENCE, load_preference

    try:
        data = load_preference(path)
    except DataError as exc:
        raise EvalError(str(exc)) from None
    if data.kind != PREFERENCE:
        raise EvalError(f"{Path(path).name} is a {data.kind} set; pairwise metrics need chosen/rejected pairs.")
    return data.rows[:limit] if limit else data.rows


def reply_logps(model, tokenizer, prompts: list[list[dict]], replies: list[list[dict]], batch_size: int = 8) -> list[float]:
    """Summed log p(reply | prompt) per row, teacher-forced, in float32."""
    import torch

    from trainer.data.preference import encode_reply

    encoded = [encode_reply(tokenizer, p, r) for p, r in zip(prompts, replies)]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[float] = [0.0] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: -sum(map(len, encoded[i])))  # similar lengths pad little
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            seqs = [encoded[i][0] + encoded[i][1] for i in idx]
            width = max(map(len, seqs))
            ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            for row, i in enumerate(idx):
                n_prompt, n_reply = len(encoded[i][0]), len(encoded[i][1])
                # position t predicts token t+1: the reply tokens are predicted from n_prompt-1 on
                out[i] = float(logprobs[row, n_prompt - 1:n_prompt - 1 + n_reply].sum())
    return out


def score_pairs(model, tokenizer, pairs: list[dict], batch_size: int = 8) -> PairScores:
    prompts = [p["prompt"] for p in pairs]
    return PairScores(chosen=reply_logps(model, tokenizer, prompts, [p["chosen"] for p in pairs], batch_size),
                      rejected=reply_logps(model, tokenizer, prompts, [p["rejected"] for p in pairs], batch_size))


def score_model(name: str, pairs: list[dict], device: str = "auto", batch_size: int = 8) -> PairScores:
    """Pairwise scores of a local model (alias, folder, registered or ft: id) on `pairs`."""
    from trainer.models import generation

    loaded = generation.load(name, device=device)
    with loaded.lock:
        return score_pairs(loaded.model, loaded.tokenizer, pairs, batch_size)


# ---------------------------------------------------------------- inside `tunepilot eval run`

def run_preference_eval(spec, progress: bool = True, on_progress=None) -> dict:
    """The `eval run --json` document for a preference dataset: the two metrics per model, each vs the first."""
    from evals import runstore
    from evals.report import write_reports

    unsupported = [p.id for p in spec.providers if p.id.startswith("openai:")]
    if unsupported:
        raise EvalError(f"Pairwise preference metrics need each model's token log-probabilities, which "
                        f"{', '.join(unsupported)} does not give; evaluate local models (base, folder or ft: id).")
    pairs = load_pairs(spec.dataset, spec.limit)
    run_dir = Path(spec.out).expanduser().resolve() if spec.out else runstore.new_run_dir(spec.dataset)
    run_dir.mkdir(parents=True, exist_ok=True)
    runstore.write_json(run_dir / runstore.SPEC_FILE, spec.model_dump())
    models, records = {}, []
    batch = spec.generation.batch_size
    for provider in spec.providers:
        started = time.perf_counter()
        scores = score_model(provider.id, pairs, device=spec.device, batch_size=batch)
        per_row = (time.perf_counter() - started) / max(len(pairs), 1)
        for i, (pair, c, r) in enumerate(zip(pairs, scores.chosen, scores.rejected)):
            records.append({
                "row": i, "key": str(i), "model": provider.name, "input": _text(pair["prompt"]),
                "expected": _text(pair["chosen"]), "output": _text(pair["rejected"]), "error": None,
                "latency_s": per_row, "scores": {"preference_accuracy": float(c > r), "logp_margin": c - r},
                "overall": float(c > r), "passed": c > r,
            })
        if on_progress:
            on_progress(provider.name, len(pairs), len(pairs))
        models[provider.name] = {
            "scores": {"preference_accuracy": scores.accuracy, "logp_margin": scores.margin},
            "errors": 0, "rows_scored": len(pairs), "overall": scores.accuracy, "pass_rate": scores.accuracy,
            "details": {}, "skipped": {}, "provider": provider.id,
        }
    first = next(iter(models))
    for name, m in models.items():
        if name != first:
            m["delta"] = {k: m["scores"][k] - models[first]["scores"][k] for k in METRICS}
    summary = {
        "run_dir": str(run_dir), "rows": len(pairs), "models": models,
        "scorers": [{"name": k, "higher_is_better": True, "bounded": k == "preference_accuracy", "weight": 1.0,
                     "threshold": None, "description": _DESCRIPTIONS[k]} for k in METRICS],
        "dataset": {"path": str(spec.dataset), "encoding": None, "format": "preference", "columns": ["prompt", "chosen", "rejected"],
                    "input_column": "prompt", "expected_column": "chosen", "template": None},
        "notices": [("preference set: each row scores the chosen reply (expected) against the rejected one (output) "
                     "by log-probability; nothing is generated"), *_ignored_settings(spec)],
        "created_at": int(time.time()),
    }
    runstore.compact(run_dir, records)
    runstore.write_json(run_dir / runstore.SUMMARY_FILE, summary)
    write_reports(run_dir, summary, records)
    return summary


def _ignored_settings(spec) -> list[str]:
    """Spec settings that only apply to generated replies, named instead of silently skipped."""
    given = [name for name in ("input_column", "expected_column", "template", "system") if getattr(spec, name)]
    given += [f"scorer {s.name}" for s in spec.scorers]
    if not given:
        return []
    return [f"{', '.join(given)} not used: a preference set is scored by log-probability of its chosen and rejected replies"]


def _text(messages: list[dict]) -> str:
    return "\n".join(m["content"] if isinstance(m["content"], str) else str(m["content"]) for m in messages)
