"""Preference tuning in planning: the schema keys, the memory terms it adds, its rules, and OpenAI's dpo method."""

from __future__ import annotations

import pytest

from tests.support import chat_row, write_jsonl
from tests.support import preset_cfg as cfg_from
from trainer.models.device import Environment
from trainer.planning.memory import estimate
from trainer.planning.rules import validate
from trainer.planning.schema import TrainConfig

GPU_BOX = Environment(has_cuda=True, has_bitsandbytes=True, cuda_bf16=True, cuda_memory_gb=80.0, description="a test GPU box")


def cfg(stage="sft", type="lora", pref_loss="sigmoid", **sections) -> TrainConfig:
    data = {"model": {"base_model": "gemma-3-270m"}, "method": {"type": type, "stage": stage, "pref_loss": pref_loss},
            "dataset": {"max_seq_length": 512}, "training": {"batch_size": 4}, "hardware": {"gpu": "A100 80G"}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return TrainConfig.model_validate(data)


# ---------------------------------------------------------------- schema

def test_stage_defaults_to_sft_and_preference_keys_are_written_only_where_read():
    assert (TrainConfig().method.stage, TrainConfig().method.beta, TrainConfig().method.pref_loss) == ("sft", 0.1, "sigmoid")
    assert not {"beta", "pref_loss"} & set(TrainConfig().to_dict()["method"])
    assert {"stage": "dpo", "beta": 0.1, "pref_loss": "sigmoid"}.items() <= cfg("dpo").to_dict()["method"].items()
    kto = cfg("kto").to_dict()["method"]
    assert kto["beta"] == 0.1 and "pref_loss" not in kto
    with pytest.raises(ValueError):
        cfg("ppo")


# ---------------------------------------------------------------- memory

def test_lora_dpo_holds_no_reference_copy_and_full_dpo_holds_one():
    lora, full = estimate(cfg("dpo"), env=GPU_BOX), estimate(cfg("dpo", "full"), env=GPU_BOX)
    assert lora.breakdown["reference_model"] == 0
    # a second copy of the weights in the training dtype: bf16 on an A100, 2 bytes per parameter
    assert full.breakdown["reference_model"] == pytest.approx(full.parameters * 2 / 1024**3, rel=0.01)
    assert "reference copy" in full.notes[-1] and "adapter disabled" in lora.notes[-1]
    # ORPO and SimPO have no reference model at all
    for no_ref in (cfg("orpo", "full"), cfg("dpo", "full", pref_loss="simpo")):
        assert estimate(no_ref, env=GPU_BOX).breakdown["reference_model"] == 0
    assert "reference_model" not in estimate(cfg("sft", "full"), env=GPU_BOX).breakdown


def test_pairs_double_the_rows_and_activations():
    sft, dpo, kto = (estimate(cfg(stage), env=GPU_BOX) for stage in ("sft", "dpo", "kto"))
    assert dpo.shape["rows"] == 2 * 4 and kto.shape["rows"] == 4 and sft.shape["rows"] == 4
    assert dpo.breakdown["activations"] == pytest.approx(2 * sft.breakdown["activations"], rel=0.01)
    assert kto.breakdown["activations"] == pytest.approx(sft.breakdown["activations"], rel=0.01)


def test_fused_log_probs_replace_the_logits_only_for_dpo_and_kto():
    dpo, orpo = estimate(cfg("dpo"), env=GPU_BOX), estimate(cfg("orpo"), env=GPU_BOX)
    # TRL's chunked kernel: one tile of <= 4096 tokens x 32768 vocabulary columns, float32, forward + backward
    assert dpo.breakdown["logits"] == pytest.approx(4096 * 32768 * 4 * 2 / 1024**3, rel=0.01)
    assert orpo.breakdown["logits"] > 10 * dpo.breakdown["logits"]  # 8 rows x 512 positions x 262k vocabulary


# ---------------------------------------------------------------- rules

def ids(config, **kw) -> set[str]:
    return {f.rule_id for f in validate(config, env=GPU_BOX, **kw).findings}


def test_learning_rate_rules_follow_the_stage():
    assert "preference-learning-rate-high" in ids(cfg_from(method={"stage": "dpo"}))  # the LoRA SFT rate 2e-4
    assert "preference-learning-rate-high" not in ids(cfg_from(method={"stage": "dpo"}, optimizer={"learning_rate": 2e-5}))
    assert "preference-learning-rate-high" in ids(cfg_from("full", method={"stage": "kto"}, optimizer={"learning_rate": 2e-5}))
    # 5e-6 is too low for LoRA SFT but a normal LoRA DPO rate
    assert "lora-learning-rate-low" in ids(cfg_from(optimizer={"learning_rate": 5e-6}))
    assert "lora-learning-rate-low" not in ids(cfg_from(method={"stage": "dpo"}, optimizer={"learning_rate": 5e-6}))


def test_pref_loss_outside_dpo_is_named():
    found = validate(cfg_from(method={"stage": "kto", "pref_loss": "ipo"}, optimizer={"learning_rate": 2e-5}), env=GPU_BOX)
    [finding] = [f for f in found.warnings if f.rule_id == "preference-keys-ignored"]
    assert "method.pref_loss" in finding.message and 'method.stage = "kto"' in finding.message
    assert finding.source == "en/preference-tuning.md"
    assert "preference-keys-ignored" not in ids(cfg_from(method={"stage": "dpo", "pref_loss": "ipo"},
                                                         optimizer={"learning_rate": 2e-5}))


@pytest.mark.parametrize("stage, rows, fix", [
    ("sft", [{"prompt": "q", "chosen": "a", "rejected": "b"}], 'a preference set (chosen/rejected pairs), which method.stage = "sft" cannot train on; set method.stage = "dpo"'),
    ("sft", [{"prompt": "q", "completion": "a", "label": True}], 'set method.stage = "kto"'),
    ("kto", [{"prompt": "q", "chosen": "a", "rejected": "b"}], 'set method.stage = "dpo"'),
    ("dpo", [chat_row("q", "a")], 'SFT data (no chosen/rejected pairs or labels), which method.stage = "dpo" cannot train on; set method.stage = "sft"'),
    ("orpo", [{"prompt": "q", "completion": "a", "label": False}], 'set method.stage = "kto"'),
])
def test_the_data_kind_must_match_the_stage(tmp_path, stage, rows, fix):
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    report = validate(cfg_from(method={"stage": stage}, dataset={"path": str(path)}, optimizer={"learning_rate": 2e-5}),
                      for_launch=True, env=GPU_BOX)
    [finding] = [f for f in report.errors if f.rule_id == "preference-data-kind"]
    assert fix in finding.message and finding.field == "method.stage"
    # a preference file is not "a format nobody knows"
    assert "dataset-format-undetectable" not in {f.rule_id for f in report.errors}


def test_matching_data_passes(tmp_path):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    report = validate(cfg_from(method={"stage": "dpo"}, dataset={"path": str(pairs)}, optimizer={"learning_rate": 2e-5}),
                      for_launch=True, env=GPU_BOX)
    assert not {f.rule_id for f in report.findings} & {"preference-data-kind", "dataset-format-undetectable",
                                                        "preference-learning-rate-high"}


# ---------------------------------------------------------------- the jobs API: OpenAI's method object

def build(tmp_path, method=None, **fields):
    from trainer.server.ft_mapping import FineTuningJobRequest, build_train_config

    req = FineTuningJobRequest(model="gemma-3-270m", training_file="file-x", method=method, **fields)
    return build_train_config(req, tmp_path / "train.jsonl", None, 8, allow_local_paths=False)


def test_openai_dpo_method_becomes_the_dpo_stage_with_its_beta(tmp_path):
    sft, _ = build(tmp_path)
    dpo, _ = build(tmp_path, {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.25, "n_epochs": 2}}})
    assert (dpo.method.stage, dpo.method.beta, dpo.training.epochs) == ("dpo", 0.25, 2)
    assert dpo.optimizer.learning_rate == pytest.approx(sft.optimizer.learning_rate / 10)  # an order below SFT
    auto, _ = build(tmp_path, {"type": "dpo", "dpo": {"hyperparameters": {"beta": "auto"}}})
    assert (auto.method.stage, auto.method.beta) == ("dpo", 0.1)
    assert build(tmp_path, {"type": "dpo"})[0].method.stage == "dpo"


@pytest.mark.parametrize("method, param", [
    ({"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}}, "method.dpo.hyperparameters.beta"),
    ({"type": "dpo", "dpo": {"hyperparameters": {"beta": "high"}}}, "method.dpo.hyperparameters.beta"),
    ({"type": "dpo", "dpo": {"hyperparameters": {"gamma": 1}}}, "method"),
    ({"type": "reinforcement"}, "method"),
])
def test_bad_dpo_methods_are_refused_by_name(tmp_path, method, param):
    from trainer.server.ft_mapping import MappingError

    with pytest.raises(MappingError) as err:
        build(tmp_path, method)
    assert err.value.param == param


def test_a_dpo_job_reads_back_as_openai_dpo_method():
    from trainer.server.ft_mapping import openai_job

    job = {"id": "ftjob-x", "status": "queued", "hyperparameters": {"n_epochs": 3},
           "method": {"type": "lora", "stage": "dpo", "beta": 0.2}}
    out = openai_job(job)["method"]
    assert out["type"] == "dpo" and out["dpo"]["hyperparameters"]["beta"] == 0.2
    assert openai_job({**job, "method": {"type": "lora"}})["method"]["type"] == "supervised"


def test_preference_rows_are_as_wide_as_the_longest_pair_in_the_data(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from trainer.data.preference import encode_reply

    long_reply = "The answer is yes. " * 6
    rows = [{"prompt": "Question 1", "chosen": "yes", "rejected": long_reply}, {"prompt": "Q2", "chosen": "a", "rejected": "b"}]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    config = cfg("dpo", model={"base_model": str(tiny_model_dir), "dtype": "float32"}, dataset={"path": str(path)})
    est = estimate(config, env=GPU_BOX)
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    prompt_ids, reply_ids = encode_reply(tok, [{"role": "user", "content": "Question 1"}],
                                         [{"role": "assistant", "content": long_reply}])
    assert est.shape == {"rows": 8, "width": len(prompt_ids) + len(reply_ids), "kept": len(prompt_ids) + len(reply_ids),
                         "source": "preference-data"}
    assert "the longest pair in the data" in est.notes[-1]
