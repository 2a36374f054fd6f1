"""Every validation rule fires on a config made to break it and stays silent on the presets; every
cited doc heading exists (en and zh)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support import chat_row, write_jsonl
from tests.support import preset_cfg as cfg_from
from trainer.models.device import Environment
from trainer.planning.diffusion import DIFFUSION_RULES
from trainer.planning.presets import PRESETS, explain, preset
from trainer.planning.rules import RULES, validate

DOCS = Path(__file__).resolve().parents[1] / "knowledge" / "docs"
GPU_BOX = Environment(has_cuda=True, has_bitsandbytes=True, cuda_bf16=True, cuda_memory_gb=80.0, description="a test GPU box")
CUDA_NO_BNB = Environment(has_cuda=True, has_bitsandbytes=False, cuda_bf16=True, cuda_memory_gb=80.0, description="a CUDA box")
CPU_ONLY = Environment(description="this laptop (no CUDA GPU)")
OLD_GPU = Environment(has_cuda=True, has_bitsandbytes=True, cuda_bf16=False, cuda_memory_gb=16.0, description="a T4 box")


def _memory_tight():
    from trainer.planning.memory import estimate

    total = estimate(cfg_from("lora", hardware={"device_memory_gb": 1000.0}), env=GPU_BOX).total_gb
    return cfg_from("lora", hardware={"device_memory_gb": round(total / 0.9, 3)})


def _chat_file(tmp_path: Path) -> str:
    return str(write_jsonl(tmp_path / "train.jsonl", [chat_row("hi", "hello")]))


# rule id -> (config builder(tmp_path), environment, for_launch)
CASES = {
    "learning-rate-positive": (lambda t: cfg_from(optimizer={"learning_rate": 0.0}), GPU_BOX, False),
    "learning-rate-too-high": (lambda t: cfg_from(optimizer={"learning_rate": 5e-3}), GPU_BOX, False),
    "full-finetune-learning-rate": (lambda t: cfg_from("full", optimizer={"learning_rate": 2e-4}), GPU_BOX, False),
    "lora-learning-rate-low": (lambda t: cfg_from(optimizer={"learning_rate": 1e-6}), GPU_BOX, False),
    "lion-learning-rate": (lambda t: cfg_from(optimizer={"type": "lion", "learning_rate": 2e-4}), GPU_BOX, False),
    "epochs-min": (lambda t: cfg_from(training={"epochs": 0.5}), GPU_BOX, False),
    "epochs-many": (lambda t: cfg_from(training={"epochs": 30}), GPU_BOX, False),
    "max-steps-positive": (lambda t: cfg_from(training={"max_steps": 0}), GPU_BOX, False),
    "max-steps-overrides-epochs": (lambda t: cfg_from(training={"max_steps": 100}), GPU_BOX, False),
    "lora-rank-min": (lambda t: cfg_from(method={"lora_r": 0}), GPU_BOX, False),
    "lora-rank-large": (lambda t: cfg_from(method={"lora_r": 512, "lora_alpha": 1024}), GPU_BOX, False),
    "lora-alpha-positive": (lambda t: cfg_from(method={"lora_alpha": 0}), GPU_BOX, False),
    "lora-alpha-ratio": (lambda t: cfg_from(method={"lora_r": 8, "lora_alpha": 128}), GPU_BOX, False),
    "lora-dropout-range": (lambda t: cfg_from(method={"lora_dropout": 1.0}), GPU_BOX, False),
    "lora-dropout-high": (lambda t: cfg_from(method={"lora_dropout": 0.5}), GPU_BOX, False),
    "target-modules-empty": (lambda t: cfg_from(method={"target_modules": []}), GPU_BOX, False),
    "lora-keys-ignored": (lambda t: cfg_from("full", method={"lora_r": 8}), GPU_BOX, False),
    "freeze-layers-range": (lambda t: cfg_from("freeze", method={"freeze_trainable_layers": 100}), GPU_BOX, False),
    "max-seq-length-min": (lambda t: cfg_from(dataset={"max_seq_length": 8}), GPU_BOX, False),
    "max-seq-length-model": (lambda t: cfg_from(model={"base_model": "meta-llama/Llama-2-7b-hf"}, dataset={"max_seq_length": 8192},
                                               hardware={"device_memory_gb": 10_000.0}), GPU_BOX, False),
    "batch-size-min": (lambda t: cfg_from(training={"batch_size": 0}), GPU_BOX, False),
    "gradient-accumulation-min": (lambda t: cfg_from(training={"gradient_accumulation_steps": 0}), GPU_BOX, False),
    "effective-batch-large": (lambda t: cfg_from(training={"batch_size": 8, "gradient_accumulation_steps": 64}), GPU_BOX, False),
    "warmup-range": (lambda t: cfg_from(optimizer={"warmup_ratio": 1.5}), GPU_BOX, False),
    "warmup-high": (lambda t: cfg_from(optimizer={"warmup_ratio": 0.5}), GPU_BOX, False),
    "weight-decay-range": (lambda t: cfg_from(optimizer={"weight_decay": -0.1}), GPU_BOX, False),
    "weight-decay-high": (lambda t: cfg_from(optimizer={"weight_decay": 0.5}), GPU_BOX, False),
    "val-split-range": (lambda t: cfg_from(dataset={"val_split": 1.0}), GPU_BOX, False),
    "val-split-with-eval-path": (lambda t: cfg_from(dataset={"val_split": 0.1, "eval_path": "eval.jsonl"}), GPU_BOX, False),
    "packing-with-eval": (lambda t: cfg_from(training={"packing": True}, dataset={"val_split": 0.1}), GPU_BOX, False),
    "qlora-needs-cuda": (lambda t: cfg_from("qlora", optimizer={"type": "adamw"}), CPU_ONLY, False),
    "qlora-needs-bitsandbytes": (lambda t: cfg_from("qlora", optimizer={"type": "adamw"}), CUDA_NO_BNB, False),
    "optimizer-8bit-needs-cuda": (lambda t: cfg_from(optimizer={"type": "adamw_8bit"}), CPU_ONLY, False),
    "optimizer-8bit-needs-bitsandbytes": (lambda t: cfg_from(optimizer={"type": "paged_adamw_8bit"}), CUDA_NO_BNB, False),
    "device-unavailable": (lambda t: cfg_from(training={"device": "cuda"}), CPU_ONLY, False),
    "bf16-unsupported": (lambda t: cfg_from(model={"dtype": "bfloat16"}), OLD_GPU, False),
    "fp16-on-cpu": (lambda t: cfg_from(model={"dtype": "float16"}, training={"device": "cpu"}, hardware={"device_memory_gb": 1000.0}), CPU_ONLY, False),
    "memory-exceeds-device": (lambda t: cfg_from(hardware={"device_memory_gb": 0.5}), GPU_BOX, False),
    "gradient-checkpointing-advised": (lambda t: _memory_tight(), GPU_BOX, False),
    "gpu-unknown": (lambda t: cfg_from(hardware={"gpu": "Voodoo 5 6000"}), GPU_BOX, False),
    "model-dims-unknown": (lambda t: cfg_from(model={"base_model": "my-mystery-model"}), GPU_BOX, False),
    "trust-remote-code": (lambda t: cfg_from(model={"trust_remote_code": True}), GPU_BOX, False),
    "remote-code-required": (lambda t: cfg_from(model={"base_model": "THUDM/chatglm3-6b"}, hardware={"device_memory_gb": 1000.0}), GPU_BOX, False),
    "sampling-without-prompts": (lambda t: cfg_from(sampling={"every_n_steps": 10}), GPU_BOX, False),
    "sampling-steps-negative": (lambda t: cfg_from(sampling={"every_n_steps": -1}), GPU_BOX, False),
    "save-every-min": (lambda t: cfg_from(saving={"save_every_n_steps": 0}), GPU_BOX, False),
    "save-total-limit-min": (lambda t: cfg_from(saving={"save_total_limit": 0}), GPU_BOX, False),
    "suffix-format": (lambda t: cfg_from(saving={"suffix": "my model!"}), GPU_BOX, False),
    "merge-qlora-adapter": (lambda t: cfg_from("qlora", saving={"merge_after_training": True}), GPU_BOX, False),
    "dataset-missing": (lambda t: cfg_from(dataset={"path": str(t / "nope.jsonl")}), GPU_BOX, True),
    "dataset-format-undetectable": (lambda t: cfg_from(dataset={"path": _weird_file(t)}), GPU_BOX, True),
    "eval-path-missing": (lambda t: cfg_from(dataset={"path": _chat_file(t), "eval_path": str(t / "no-eval.jsonl")}), GPU_BOX, True),
    "output-dir-not-writable": (lambda t: cfg_from(dataset={"path": _chat_file(t)}, saving={"output_dir": _file_as_parent(t)}), GPU_BOX, True),
    "output-dir-not-empty": (lambda t: cfg_from(dataset={"path": _chat_file(t)}, saving={"output_dir": _busy_dir(t)}), GPU_BOX, True),
    "base-model-unavailable": (lambda t: cfg_from(model={"base_model": "no-such-model"}, dataset={"path": _chat_file(t)}), GPU_BOX, True),
    # preference tuning (tests/test_preference_planning.py has the finer cases)
    "preference-beta-positive": (lambda t: cfg_from(method={"stage": "dpo", "beta": 0.0}, optimizer={"learning_rate": 2e-5}), GPU_BOX, False),
    "preference-beta-range": (lambda t: cfg_from(method={"stage": "dpo", "beta": 5.0}, optimizer={"learning_rate": 2e-5}), GPU_BOX, False),
    "preference-learning-rate-high": (lambda t: cfg_from(method={"stage": "dpo"}), GPU_BOX, False),
    "preference-keys-ignored": (lambda t: cfg_from(method={"beta": 0.5}), GPU_BOX, False),
    "kto-batch-size": (lambda t: cfg_from(method={"stage": "kto"}, training={"batch_size": 1}, optimizer={"learning_rate": 2e-5}), GPU_BOX, False),
    "preference-packing": (lambda t: cfg_from(method={"stage": "dpo"}, training={"packing": True}, optimizer={"learning_rate": 2e-5}), GPU_BOX, False),
    "preference-data-kind": (lambda t: cfg_from(dataset={"path": str(write_jsonl(t / "pairs.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}]))}), GPU_BOX, True),
}


def _weird_file(t: Path) -> str:
    path = t / "weird.jsonl"
    path.write_text(json.dumps({"question": "a", "answer": "b"}) + "\n")
    return str(path)


def _file_as_parent(t: Path) -> str:
    blocker = t / "a-file"
    blocker.write_text("x")
    return str(blocker / "out")


def _busy_dir(t: Path) -> str:
    busy = t / "busy"
    busy.mkdir()
    (busy / "thesis.docx").write_text("precious")
    return str(busy)


def test_there_are_enough_rules_and_every_rule_has_a_case():
    assert len(RULES) >= 25
    assert len({r.id for r in RULES}) == len(RULES)
    assert set(CASES) == {r.id for r in RULES}


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_on_a_config_made_to_break_it(rule_id, tmp_path):
    build, env, for_launch = CASES[rule_id]
    report = validate(build(tmp_path), for_launch=for_launch, env=env)
    fired = [f for f in report.findings if f.rule_id == rule_id]
    assert fired, f"{rule_id} did not fire; got {[f.rule_id for f in report.findings]}"
    rule = next(r for r in RULES if r.id == rule_id)
    finding = fired[0]
    assert finding.severity == rule.severity and finding.source == f"en/{rule.doc}" and finding.heading == rule.heading
    assert not re.search(r"\{[a-z_]+\}", finding.message), finding.message  # every placeholder was filled
    assert (finding in report.errors) == (rule.severity == "error")


@pytest.mark.parametrize("name", PRESETS)
def test_presets_are_silent(name, tmp_path):
    cfg = preset(name, n_examples=2000)
    assert validate(cfg, env=GPU_BOX).findings == []
    cfg.dataset.path = _chat_file(tmp_path)
    cfg.saving.output_dir = str(tmp_path / "run")
    assert validate(cfg, for_launch=True, env=GPU_BOX).findings == []


def test_cpu_machine_errors_name_the_alternative():
    report = validate(preset("qlora"), env=CPU_ONLY)
    by_id = {f.rule_id: f for f in report.errors}
    assert 'method.type = "lora"' in by_id["qlora-needs-cuda"].message
    assert 'optimizer.type = "adamw"' in by_id["optimizer-8bit-needs-cuda"].message
    assert not report.ok


def test_named_target_gpu_is_judged_instead_of_this_machine():
    cfg = preset("qlora")
    cfg.hardware.gpu = "RTX 4090"
    assert validate(cfg, env=CPU_ONLY).ok  # planning for the 4090
    launch = validate(cfg, for_launch=True, env=CPU_ONLY)  # launching here: this machine counts
    assert {"qlora-needs-cuda", "optimizer-8bit-needs-cuda"} <= {f.rule_id for f in launch.errors}


def test_all_problems_in_one_pass_and_report_shape():
    cfg = cfg_from(optimizer={"learning_rate": 0.0, "warmup_ratio": 2.0}, method={"lora_r": 0, "lora_dropout": 1.5},
                   training={"batch_size": 0, "epochs": 0})
    report = validate(cfg, env=GPU_BOX)
    ids = {f.rule_id for f in report.errors}
    assert {"learning-rate-positive", "warmup-range", "lora-rank-min", "lora-dropout-range", "batch-size-min", "epochs-min"} <= ids
    data = report.to_dict()
    assert set(data) == {"errors", "warnings"}
    assert set(data["errors"][0]) == {"rule_id", "severity", "field", "message", "source", "heading"}


def test_detect_environment_probe_runs():
    env = Environment.detect()
    assert isinstance(env.has_cuda, bool) and isinstance(env.has_bitsandbytes, bool)


# ---------------------------------------------------------------- the docs behind the rules

def _headings(path: Path) -> set[str]:
    return {m.group(2).strip() for m in re.finditer(r"^(##|###) (.+)$", path.read_text(encoding="utf-8"), re.M)}


def test_every_cited_heading_exists_in_en_and_zh():
    cited = [(r.doc, r.heading, r.heading_zh) for r in RULES + DIFFUSION_RULES]
    for doc, heading, heading_zh in cited:
        assert heading in _headings(DOCS / "en" / doc), f"en/{doc} lacks '{heading}'"
        assert heading_zh in _headings(DOCS / "zh" / doc), f"zh/{doc} lacks '{heading_zh}'"
    for name in PRESETS:
        for item in explain(preset(name), n_examples=1000):
            assert item["heading"] in _headings(DOCS / item["source"]), item


@pytest.mark.parametrize("topic", ["lora", "qlora", "hyperparameters", "optimizers", "memory"])
def test_docs_have_front_matter_and_matching_sections(topic):
    import yaml

    for lang in ("en", "zh"):
        text = (DOCS / lang / f"{topic}.md").read_text(encoding="utf-8")
        assert text.startswith("---\n")
        meta = yaml.safe_load(text.split("---\n")[1])
        assert meta["lang"] == lang and meta["title"] and isinstance(meta["tags"], list) and meta["sources"]
        assert len(text.encode("utf-8")) > 4000  # substantive, not a stub
    en = re.findall(r"^(##|###) ", (DOCS / "en" / f"{topic}.md").read_text(encoding="utf-8"), re.M)
    zh = re.findall(r"^(##|###) ", (DOCS / "zh" / f"{topic}.md").read_text(encoding="utf-8"), re.M)
    assert en == zh  # same sections in the same order


def test_output_folder_semantics_match_the_trainer(tmp_path):
    cfg = cfg_from(dataset={"path": _chat_file(tmp_path)}, saving={"output_dir": str(tmp_path / "run")})
    run = tmp_path / "run"
    (run / "checkpoint-10").mkdir(parents=True)
    (run / "worker.log").write_text("log")
    ids = lambda **kw: {f.rule_id for f in validate(cfg, for_launch=True, env=GPU_BOX, **kw).errors}  # noqa: E731
    assert "output-dir-not-empty" not in ids()  # an interrupted run resumes
    (run / "job_card.json").write_text("{}")
    assert "output-dir-not-empty" in ids()  # a finished run would be overwritten
    assert "output-dir-not-empty" not in ids(overwrite=True)


def test_dataset_format_detection_reads_gbk_and_csv(tmp_path):
    from trainer.planning.rules import detect_format

    gbk = tmp_path / "zh.jsonl"
    gbk.write_bytes((json.dumps({"instruction": "你好", "output": "您好"}, ensure_ascii=False) + "\n").encode("gb18030"))
    assert detect_format(gbk) == "alpaca"
    table = tmp_path / "pc.csv"
    table.write_text("prompt,completion\nhi,hello\n")
    assert detect_format(table) == "prompt_completion"
    assert detect_format(tmp_path / "missing.jsonl") is None


def test_chinese_readers_get_chinese_citations():
    cfg = cfg_from("qlora", saving={"merge_after_training": True})
    [en] = [f for f in validate(cfg, env=GPU_BOX).warnings if f.rule_id == "merge-qlora-adapter"]
    [zh] = [f for f in validate(cfg, env=GPU_BOX, lang="zh").warnings if f.rule_id == "merge-qlora-adapter"]
    assert (en.source, en.heading) == ("en/qlora.md", "Merging a QLoRA adapter")
    assert (zh.source, zh.heading) == ("zh/qlora.md", "合并 QLoRA 适配器") and zh.message == en.message
