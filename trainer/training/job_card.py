"""The job card: what was trained, how, on what, with which result — `job_card.json` plus a readable `job_card.md`.

It records the resolved config with where each value came from (the config file or the schema
default), package versions, data statistics, peak memory measured against the estimate, the
duration, the loss curve and sample outputs, so a run can be understood and repeated later.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

from trainer.planning.output_dir import JOB_CARD
from trainer.planning.schema import TrainConfig
from tunepilot.core import atomic

_PACKAGES = ("tunepilot", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes")


def package_versions() -> dict:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["python"] = platform.python_version()
    return versions


def settings_with_sources(cfg: TrainConfig) -> list[dict]:
    """Every key with its value and whether the user set it or it is the schema default."""
    rows = []
    for section_name in type(cfg).model_fields:
        section = getattr(cfg, section_name)
        for key in type(section).model_fields:
            rows.append({
                "field": f"{section_name}.{key}",
                "value": getattr(section, key),
                "source": "config" if key in section.model_fields_set else "default",
            })
    return rows


def memory_estimate(cfg: TrainConfig) -> dict:
    """The memory estimate (`trainer.planning.memory`) of this config, to compare with the measured peak."""
    from trainer.planning.memory import estimate

    try:
        return estimate(cfg).to_dict()
    except Exception as exc:  # noqa: BLE001 (an estimate must never fail a finished training run)
        return {"error": f"{type(exc).__name__}: {exc}"}


def build_job_card(cfg: TrainConfig, result, params: dict, precision, device: str) -> dict:
    losses = [x["loss"] for x in result.losses]
    estimate = memory_estimate(cfg)
    return {
        "config": cfg.to_dict(),
        "settings": settings_with_sources(cfg),
        "packages": package_versions(),
        "hardware": {"device": device, "weights_dtype": str(precision.load_dtype).replace("torch.", ""),
                     "autocast": precision.autocast, "world_size": result.world_size, "platform": platform.platform()},
        "parameters": params,
        "data": {**result.data_stats, "skipped_rows": result.skipped_rows},
        "memory": {
            "peak_measured_mb": result.peak_memory_mb,
            "measured_as": "CUDA max_memory_allocated" if device == "cuda" else "process peak RSS",
            "estimated": estimate,
            "estimated_total_mb": round(estimate["total_gb"] * 1024, 1) if estimate and "total_gb" in estimate else None,
        },
        "duration_s": result.duration_s,
        "steps": {"completed": result.global_step, "total": result.total_steps, "resumed_from": result.resumed_from},
        "trained_tokens": result.trained_tokens,
        "loss": {"first": losses[0] if losses else None, "last": losses[-1] if losses else None,
                 "min": min(losses) if losses else None, "curve": result.losses, "eval": result.eval_losses},
        "samples": result.samples,
        "output": {"path": result.final_path, "is_adapter": result.is_adapter},
    }


def render_markdown(card: dict) -> str:
    lines = ["# Job card", ""]
    c = card["config"]
    stage = c["method"].get("stage", "sft")  # preference tuning: dpo / orpo / kto with its beta
    stage_note = f", stage `{stage}` (beta {c['method'].get('beta')})" if stage != "sft" else ""
    lines += [f"- Base model: `{c['model']['base_model']}`", f"- Method: `{c['method']['type']}`{stage_note}",
              f"- Output: `{card['output']['path']}` ({'adapter' if card['output']['is_adapter'] else 'full model'})",
              f"- Duration: {card['duration_s']} s, steps {card['steps']['completed']}/{card['steps']['total']}",
              f"- Trained tokens: {card['trained_tokens']:,}",
              f"- Loss: first {card['loss']['first']}, last {card['loss']['last']}, min {card['loss']['min']}",
              (f"- Peak memory: {card['memory']['peak_measured_mb']} MB measured ({card['memory']['measured_as']}); "
               f"estimated {card['memory']['estimated_total_mb'] if card['memory']['estimated_total_mb'] is not None else 'n/a'} MB"),
              "", "## Data", ""]
    lines += [f"- {k}: {v}" for k, v in card["data"].items() if k != "skipped_rows"]
    if card["data"]["skipped_rows"]:
        lines += ["", "Skipped rows:"] + [f"- line {r['line']}: {r['message']}" for r in card["data"]["skipped_rows"]]
    lines += ["", "## Settings", "", "| field | value | source |", "|---|---|---|"]
    lines += [f"| {s['field']} | {s['value']} | {s['source']} |" for s in card["settings"]]
    lines += ["", "## Packages", ""] + [f"- {k} {v}" for k, v in card["packages"].items()]
    if card["samples"]:
        lines += ["", "## Samples", ""] + [f"- step {s['step']}: **{s['prompt']}** -> {s['output']}" for s in card["samples"]]
    return "\n".join(lines) + "\n"


def write_job_card(cfg: TrainConfig, result, params: dict, precision, device: str) -> Path:
    card = build_job_card(cfg, result, params, precision, device)
    out = Path(result.output_dir)
    (out / "job_card.md").write_text(render_markdown(card), encoding="utf-8")
    # job_card.json marks a finished run (trainer.planning.output_dir), so it appears whole or not at all.
    return atomic.write_json(out / JOB_CARD, card, default=str)
