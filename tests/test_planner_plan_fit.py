"""Plan and fit (issue 13): defaults from the rules and the data, the target GPU rather than this
machine, and a config that fits the named GPU whenever one of the chosen method can."""

from __future__ import annotations

import pytest

from assistant.fit import MARGIN, fit, smallest
from assistant.plan import lion_rate, plan, rounded_length
from trainer.models.device import Environment
from trainer.planning.config_io import parse_config
from trainer.planning.memory import estimate
from tests.support import chat_rows, write_jsonl


def test_values_the_user_gave_are_written_as_given_even_invalid_ones():
    planned = plan({"optimizer.learning_rate": -3.0, "training.epochs": 0, "method.lora_r": 0})
    cfg = parse_config(planned.data)
    assert cfg.optimizer.learning_rate == -3.0 and cfg.training.epochs == 0 and cfg.method.lora_r == 0


def test_openai_style_defaults_from_the_real_row_count(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", chat_rows(3000, repeat=1))
    planned = plan({"dataset.path": str(data)})
    t = planned.data["training"]
    assert planned.n_examples == 3000
    assert t["epochs"] == 4 and t["batch_size"] * t["gradient_accumulation_steps"] == 6  # 0.2% of 3000
    assert planned.data["optimizer"]["learning_rate"] == pytest.approx(2e-4)  # batch 6 -> multiplier 0.1
    assert "0.2% of 3000 examples" in planned.reasons["training.batch_size"][0]


def test_max_length_from_the_p95_of_token_lengths_only_when_unset(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", chat_rows(40, answer="word " * 30, repeat=1))
    planned = plan({"dataset.path": str(data)})
    p95 = planned.facts.p95_tokens
    assert p95 and planned.data["dataset"]["max_seq_length"] == rounded_length(p95, None)
    assert planned.data["dataset"]["max_seq_length"] % 128 == 0
    assert "95%" in planned.reasons["dataset.max_seq_length"][0]
    kept = plan({"dataset.path": str(data), "dataset.max_seq_length": 2048})
    assert kept.data["dataset"]["max_seq_length"] == 2048


def test_lion_gets_a_third_of_adamw_and_the_rule_agrees():
    from trainer.planning.rules import validate

    planned = plan({"optimizer.type": "lion", "hardware.gpu": "RTX 4090"})
    assert planned.data["optimizer"]["learning_rate"] == lion_rate(2e-4) == pytest.approx(6.6e-5)
    report = validate(parse_config(planned.data))
    assert not [f for f in report.warnings if f.rule_id == "lion-learning-rate"]


def test_qlora_optimizer_only_where_the_target_has_cuda():
    on_gpu = plan({"method.type": "qlora", "hardware.gpu": "RTX 4090"})
    assert on_gpu.data["optimizer"]["type"] == "paged_adamw_8bit" and on_gpu.target.env.has_cuda
    here = plan({"method.type": "qlora", "training.device": "cpu"})
    if not here.target.env.has_cuda:
        assert here.data["optimizer"]["type"] == "adamw"
        assert "8-bit optimizers need CUDA" in here.reasons["optimizer.type"][0]


def test_named_memory_plans_for_an_unnamed_cuda_gpu():
    planned = plan({"hardware.device_memory_gb": 16, "method.type": "qlora"})
    assert planned.target.kind == "gpu-memory" and planned.target.env.has_cuda
    assert planned.data["training"]["device"] == "cuda"


def test_a_size_alone_is_sized_with_a_catalogue_model_and_asked_for():
    planned = plan({"model.size": 3_000_000_000, "method.type": "full"})
    assert planned.proxy_model in ("Qwen2.5-3B", "Llama-3.2-3B")
    assert planned.data["model"]["base_model"] == "" and "model.base_model" in planned.missing


def test_missing_dataset_is_asked_for_and_a_missing_file_is_a_warning(tmp_path):
    assert "dataset.path" in plan({}).missing
    missing = tmp_path / "nowhere.jsonl"
    planned = plan({"dataset.path": str(missing)})
    assert "dataset.path" not in planned.missing
    assert planned.notes[0]["rule_id"] == "request.dataset-not-found" and str(missing) in planned.notes[0]["message"]


# ---------------------------------------------------------------- fit

def _cfg(**sections) -> object:
    data = {"model": {"base_model": "meta-llama/Meta-Llama-3-8B-Instruct"}, "training": {"batch_size": 4,
            "gradient_accumulation_steps": 4}, "dataset": {"max_seq_length": 1024}}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return parse_config(data)


def test_fit_lowers_the_device_batch_and_keeps_the_effective_batch():
    from trainer.planning.hardware import lookup_gpu

    cfg = _cfg(method={"type": "qlora"}, optimizer={"type": "paged_adamw_8bit"}, hardware={"gpu": "RTX 4080"})
    env = Environment.for_gpu(lookup_gpu("RTX 4080"))
    before = estimate(cfg, env=env)
    assert not before.fits or before.total_gb > 16 * (1 - MARGIN)
    result = fit(cfg, env, pinned={"method.type"})
    t = result.config.training
    assert result.fits and result.total_gb <= 16 * (1 - MARGIN)
    assert t.batch_size * t.gradient_accumulation_steps == 16
    assert {c["field"] for c in result.changes} >= {"training.batch_size"}


def test_fit_switches_lora_to_qlora_with_a_notice_only_when_the_method_is_free():
    from trainer.planning.hardware import lookup_gpu

    env = Environment.for_gpu(lookup_gpu("RTX 3060"))
    cfg = _cfg(hardware={"gpu": "RTX 3060"})
    free = fit(cfg, env, pinned=set())
    assert free.fits and free.config.method.type == "qlora"
    assert any(c["field"] == "method.type" for c in free.changes)
    kept = fit(cfg, env, pinned={"method.type"})
    assert kept.config.method.type == "lora" and kept.fits is False
    assert any("QLoRA" in s for s in kept.suggestions) and any("GPU with at least" in s for s in kept.suggestions)


def test_user_values_are_never_changed_by_fit():
    from trainer.planning.hardware import lookup_gpu

    env = Environment.for_gpu(lookup_gpu("RTX 4060"))
    cfg = _cfg(hardware={"gpu": "RTX 4060"}, training={"batch_size": 16, "gradient_checkpointing": False})
    pinned = {"training.batch_size", "training.gradient_checkpointing", "dataset.max_seq_length", "method.type"}
    result = fit(cfg, env, pinned)
    assert result.config.training.batch_size == 16 and not result.config.training.gradient_checkpointing
    assert result.fits is False and not result.changes


def test_fits_whenever_the_smallest_setting_of_the_method_fits():
    from trainer.planning.hardware import lookup_gpu

    for gpu in ("T4", "RTX 4090", "A100 80G"):
        env = Environment.for_gpu(lookup_gpu(gpu))
        cfg = _cfg(hardware={"gpu": gpu}, method={"type": "lora"})
        possible = estimate(smallest(cfg, {"method.type"}, env, 256), env=env).fits
        assert fit(cfg, env, {"method.type"}).fits is possible, gpu


def test_the_default_model_on_this_machine_is_planned_at_a_batch_it_can_hold():
    from assistant.config_from_text import config_from_text

    result = config_from_text("fine-tune gemma-3-270m on data.jsonl")
    if result["target"]["kind"] == "machine" and result["memory_estimate"]["device_memory_gb"]:
        mem = result["memory_estimate"]
        assert mem["fits"] and mem["total_gb"] <= mem["device_memory_gb"] * (1 - MARGIN) + 1e-6


def test_several_gpus_are_planned_per_gpu_with_a_note():
    planned = plan({"hardware.gpu": "A100 80GB", "hardware.gpu_count": 2})
    assert any(n["rule_id"] == "request.multi-gpu" for n in planned.notes)
    assert planned.target.memory_gb == 80
