"""LLaMA-Factory and axolotl configs: detection, every key's mapping, peer defaults, export and the round trip.

The peers' own published examples (tests/fixtures/*/upstream, copied with their Apache-2.0 license) must
import with every top-level key accounted for; the hand-written fixtures exercise the mappings one by one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trainer.planning.config_io import read_config_data
from trainer.planning.findings import check_config
from trainer.planning.peer_configs import (
    PeerFormatError,
    detect,
    export_config,
    import_data,
    import_file,
    peer_format_problem,
)
from trainer.planning.schema import TrainConfig

FIXTURES = Path(__file__).parent / "fixtures"
LF = FIXTURES / "llamafactory"
AX = FIXTURES / "axolotl"
LF_UPSTREAM = sorted((LF / "upstream").glob("*.yaml"))
AX_UPSTREAM = sorted((AX / "upstream").glob("*.y*ml"))


def _by_key(report) -> dict:
    return {e.key: e for e in report.entries}


def _top_keys(report) -> set[str]:
    return {e.key.split(".")[0].split("[")[0] for e in report.entries if e.status != "default"}


# ---------------------------------------------------------------- detection

@pytest.mark.parametrize("path, expected", [(p, "llamafactory") for p in LF_UPSTREAM] + [(p, "axolotl") for p in AX_UPSTREAM]
                         + [(LF / "lora_sft.yaml", "llamafactory"), (AX / "lora_local.yml", "axolotl")])
def test_detects_each_peer(path, expected):
    assert detect(read_config_data(path)) == expected


def test_tunepilot_and_unrelated_files_are_not_peers():
    assert detect(TrainConfig().to_dict()) is None
    assert detect({"lr": 1e-4, "num_epochs": 3}) is None  # a typo'd tunepilot file is not called a peer's
    assert detect(read_config_data(AX / "neither.yaml")) is None
    assert detect(["a", "list"]) is None


def test_neither_format_says_which_formats_are_known():
    with pytest.raises(PeerFormatError) as info:
        import_file(AX / "neither.yaml")
    message = str(info.value)
    assert "no known config format" in message and "LLaMA-Factory (llamafactory)" in message and "axolotl (axolotl)" in message


def test_wrong_from_and_unknown_from_are_refused():
    data = read_config_data(LF / "lora_sft.yaml")
    with pytest.raises(PeerFormatError, match="looks like LLaMA-Factory's config format, not axolotl's"):
        import_data(data, "axolotl")
    with pytest.raises(PeerFormatError, match="unknown source format 'kohya2'"):
        import_data(data, "kohya2")
    with pytest.raises(PeerFormatError, match="already a tunepilot config"):
        import_data(TrainConfig().to_dict())


def test_validate_names_the_format_in_one_line():
    checked = check_config(LF / "lora_sft.yaml")
    assert len(checked.report.errors) == 1 and not checked.report.warnings
    finding = checked.report.errors[0]
    assert finding.rule_id == "peer-format"
    assert "is a LLaMA-Factory config" in finding.message and "tunepilot config import" in finding.message
    assert "\n" not in finding.message
    assert "axolotl config" in peer_format_problem(read_config_data(AX / "lora_local.yml"), "x.yml")["message"]


# ---------------------------------------------------------------- the peers' own examples

@pytest.mark.parametrize("path", LF_UPSTREAM + AX_UPSTREAM, ids=lambda p: p.name)
def test_published_examples_drop_no_key(path):
    data = read_config_data(path)
    _config, report = import_file(path)
    assert _top_keys(report) == set(data), "every key of the file is in the report"
    for entry in report.of("not_supported"):
        assert entry.why, f"{entry.key} has no nearest feature"
    # the written config is a valid tunepilot config (schema); values the schema rejects were moved to not_supported
    assert check_config(report.data).problems == []


# ---------------------------------------------------------------- LLaMA-Factory keys

def test_llamafactory_keys_map():
    config, report = import_file(LF / "lora_sft.yaml")
    keys = _by_key(report)
    assert config.model.base_model == "Qwen/Qwen2.5-0.5B-Instruct" and config.model.trust_remote_code is True
    assert config.method.type == "lora" and (config.method.lora_r, config.method.lora_alpha) == (16, 32)
    assert config.method.lora_dropout == 0.1 and config.method.target_modules == ["q_proj", "v_proj"]
    assert keys["lora_target"].status == "changed"
    assert config.dataset.path == "greet_alpaca,chat_tags" and keys["dataset"].status == "changed"  # ", " normalised
    assert config.dataset.dataset_dir == "data" and config.dataset.max_seq_length == 1024
    assert config.dataset.val_split == 0.1
    assert config.training.batch_size == 2 and config.training.gradient_accumulation_steps == 4
    assert config.training.epochs == 2 and config.training.max_steps == 200 and config.training.seed == 7
    assert config.optimizer.learning_rate == 2e-4 and config.optimizer.lr_scheduler == "cosine"
    assert config.optimizer.warmup_ratio == 0.05 and config.optimizer.weight_decay == 0.01
    assert config.optimizer.type == "adamw" and keys["optim"].status == "mapped"
    assert config.model.dtype == "bfloat16" and keys["bf16"].status == "changed"
    assert config.saving.output_dir == "saves/qwen-lora" and config.saving.save_every_n_steps == 100
    assert config.saving.save_total_limit == 3
    assert config.training.packing is False
    # named, with the nearest feature
    for key in ("template", "max_samples", "logging_steps", "overwrite_output_dir"):
        assert keys[key].status == "not_supported" and keys[key].why
    # LLaMA-Factory turns gradient checkpointing on unless disabled: written explicitly
    defaults = {e.target: e.new_value for e in report.of("default")}
    assert defaults == {"training.gradient_checkpointing": True} and config.training.gradient_checkpointing is True


@pytest.mark.parametrize("extra, check", [
    ({"quantization_bit": 4}, lambda c, k: c.method.type == "qlora" and k["quantization_bit"].status == "changed"),
    ({"quantization_bit": 8}, lambda c, k: c.method.type == "lora" and k["quantization_bit"].status == "not_supported"),
    ({"lora_target": "all"}, lambda c, k: c.method.target_modules == "all-linear"),
    ({"neat_packing": True}, lambda c, k: c.training.packing and k["neat_packing"].status == "mapped"),
    ({"packing": True}, lambda c, k: c.training.packing and k["packing"].status == "changed"),
    ({"disable_gradient_checkpointing": True}, lambda c, k: c.training.gradient_checkpointing is False),
    ({"fp16": True}, lambda c, k: c.model.dtype == "float16"),
    ({"optim": "adamw_bnb_8bit"}, lambda c, k: c.optimizer.type == "adamw_8bit"),
    ({"optim": "galore_adamw"}, lambda c, k: k["optim"].status == "not_supported" and "adamw_8bit" in k["optim"].why),
    ({"lr_scheduler_type": "inverse_sqrt"}, lambda c, k: k["lr_scheduler_type"].status == "not_supported"),
    ({"warmup_steps": 20, "max_steps": 200}, lambda c, k: c.optimizer.warmup_ratio == 0.1),
    ({"val_size": 50}, lambda c, k: k["val_size"].status == "not_supported"),
    ({"learning_rate": "5e-5"}, lambda c, k: c.optimizer.learning_rate == 5e-5),  # YAML 1.1 reads 5e-5 as text
    ({"finetuning_type": "freeze", "freeze_trainable_layers": 3},
     lambda c, k: c.method.type == "freeze" and c.method.freeze_trainable_layers == 3),
    ({"lora_rank": "big"}, lambda c, k: k["lora_rank"].status == "not_supported" and "method.lora_r" in k["lora_rank"].why),
    ({"some_future_key": 1}, lambda c, k: k["some_future_key"].status == "not_supported"),
])
def test_llamafactory_single_keys(extra, check):
    data = {"model_name_or_path": "m", "stage": "sft", "finetuning_type": "lora", "dataset": "d", "bf16": True, **extra}
    config, report = import_data(data, "llamafactory")
    assert check(config, _by_key(report))
    assert _top_keys(report) == set(data)


def test_llamafactory_defaults_written_when_the_file_relies_on_them():
    config, report = import_data({"model_name_or_path": "m", "stage": "sft", "finetuning_type": "lora",
                                  "dataset": "d", "template": "qwen"}, "llamafactory")
    assert (config.method.lora_r, config.method.lora_alpha, config.method.lora_dropout) == (8, 16, 0.0)
    assert config.optimizer.learning_rate == 5e-5 and config.training.batch_size == 8
    assert config.optimizer.lr_scheduler == "linear" and config.optimizer.warmup_ratio == 0.0
    assert config.dataset.max_seq_length == 2048 and config.saving.save_every_n_steps == 500
    assert config.model.dtype == "float32" and config.dataset.dataset_dir is None  # tunepilot also looks in data/
    assert all(e.why for e in report.of("default"))


def test_llamafactory_lora_keys_under_full_are_not_claimed():
    _config, report = import_data({"model_name_or_path": "m", "stage": "sft", "finetuning_type": "full",
                                  "lora_rank": 8, "dataset": "d"}, "llamafactory")
    entry = _by_key(report)["lora_rank"]
    assert entry.status == "not_supported" and "takes no effect with method.type = full" in entry.why
    assert "lora_r" not in report.data["method"]


def test_llamafactory_stages():
    dpo, rep = import_file(LF / "upstream" / "qwen3_lora_dpo.yaml")
    assert dpo.method.stage == "dpo" and dpo.method.beta == 0.1 and dpo.method.pref_loss == "sigmoid"
    kto, _ = import_file(LF / "upstream" / "qwen3_lora_kto.yaml")
    assert kto.method.stage == "kto"
    _rm, rep = import_file(LF / "upstream" / "qwen3_lora_reward.yaml")
    assert _by_key(rep)["stage"].status == "not_supported" and "reward" in _by_key(rep)["stage"].why
    pt, rep = import_file(LF / "upstream" / "qwen3_lora_pretrain.yaml")
    assert _by_key(rep)["stage"].status == "changed" and pt.training.packing is True  # pre-training packs by default
    orpo, rep = import_data({"model_name_or_path": "m", "stage": "dpo", "pref_loss": "orpo", "dataset": "p",
                             "finetuning_type": "lora"}, "llamafactory")
    assert orpo.method.stage == "orpo"


def test_llamafactory_remote_dataset_dir_is_named():
    _, report = import_file(LF / "upstream" / "qwen3_lora_sft_ray.yaml")
    entry = _by_key(report)["dataset_dir"]
    assert entry.status == "not_supported" and "offline" in entry.why


# ---------------------------------------------------------------- axolotl keys

def test_axolotl_keys_map():
    config, report = import_file(AX / "lora_local.yml")
    keys = _by_key(report)
    assert config.model.base_model == "Qwen/Qwen2.5-0.5B-Instruct"
    assert config.method.type == "qlora" and (config.method.lora_r, config.method.lora_alpha) == (8, 16)
    assert config.method.lora_dropout == 0.0 and config.method.target_modules == ["q_proj", "k_proj", "v_proj"]
    assert config.dataset.path == "data/chat.jsonl" and config.dataset.format == "chat"
    assert keys["datasets[0].path"].status == "mapped" and keys["datasets[0].type"].status == "changed"
    assert keys["datasets[0].field_messages"].status == "mapped"
    assert config.dataset.val_split == 0.1 and config.dataset.max_seq_length == 2048
    assert config.training.packing is True and keys["sample_packing"].status == "changed"
    assert (config.training.batch_size, config.training.gradient_accumulation_steps) == (4, 2)
    assert config.training.epochs == 3 and config.training.max_steps == 100
    assert config.optimizer.type == "paged_adamw_8bit" and config.optimizer.lr_scheduler == "linear"
    assert config.optimizer.learning_rate == 1e-4 and config.optimizer.warmup_ratio == 0.1  # 10 of 100 steps
    assert config.model.dtype == "bfloat16" and config.training.gradient_checkpointing is True
    assert config.saving.save_every_n_steps == 25 and config.saving.save_total_limit == 2 and config.training.seed == 3
    assert keys["dataset_prepared_path"].status == "empty" and keys["wandb_project"].status == "empty"
    assert keys["tf32"].status == "not_supported" and keys["logging_steps"].status == "not_supported"


def test_axolotl_defaults_and_full_finetune():
    config, report = import_data({"base_model": "m", "datasets": [{"path": "x.jsonl", "type": "alpaca"}],
                                  "learning_rate": 1e-5, "sample_packing": False, "val_set_size": 0}, "axolotl")
    assert config.method.type == "full" and config.training.epochs == 1 and config.training.batch_size == 1
    assert config.dataset.max_seq_length == 512 and config.model.dtype == "float32"
    assert {e.target for e in report.of("default")} == {"method.type", "training.epochs", "training.batch_size",
                                                         "dataset.max_seq_length", "model.dtype"}


def test_axolotl_datasets_beyond_the_first_and_unknown_layouts_are_named():
    data = {"base_model": "m", "adapter": "lora", "micro_batch_size": 1, "datasets": [
        {"path": "a.jsonl", "type": "chat_template", "field_messages": "dialog",
         "message_property_mappings": {"role": "speaker", "content": "text"}},
        {"path": "b.jsonl", "type": "alpaca"}]}
    config, report = import_data(data, "axolotl")
    keys = _by_key(report)
    assert config.dataset.path == "a.jsonl" and config.dataset.format == "auto"
    assert keys["datasets[0].type"].status == "not_supported" and "dataset_info.json" in keys["datasets[0].type"].why
    assert keys["datasets[0].field_messages"].status == "not_supported"
    assert keys["datasets[1]"].status == "not_supported"


def test_axolotl_hub_dataset_path_says_download():
    _, report = import_file(AX / "upstream" / "llama-2__lora.yml")
    entry = _by_key(report)["datasets[0].path"]
    assert entry.status == "changed" and "download" in entry.why


def test_axolotl_rl():
    config, _report = import_file(AX / "upstream" / "mistral__orpo__mistral-qlora-orpo.yml")
    assert config.method.stage == "orpo"
    config, _ = import_data({"base_model": "m", "adapter": "lora", "rl": "ipo", "rl_beta": 0.2,
                             "datasets": [{"path": "p.jsonl"}]}, "axolotl")
    assert config.method.stage == "dpo" and config.method.pref_loss == "ipo" and config.method.beta == 0.2


# ---------------------------------------------------------------- export and the round trip

def _round_trip(path: Path, to: str):
    first, report = import_file(path)
    exported = export_config(first, to)
    again, _ = import_data(yaml.safe_load(yaml.safe_dump(exported.data)), to)
    return first, again, report, exported


@pytest.mark.parametrize("path", [LF / "lora_sft.yaml", *LF_UPSTREAM], ids=lambda p: p.name)
def test_llamafactory_round_trip_keeps_every_supported_key(path):
    first, again, _report, exported = _round_trip(path, "llamafactory")
    assert again.to_dict() == first.to_dict()
    assert exported.data["stage"] in ("sft", "dpo", "kto")


@pytest.mark.parametrize("path", [AX / "lora_local.yml", *AX_UPSTREAM], ids=lambda p: p.name)
def test_axolotl_round_trip_keeps_every_supported_key(path):
    first, again, _report, _exported = _round_trip(path, "axolotl")
    assert again.to_dict() == first.to_dict()


def test_export_names_what_does_not_carry_over(tmp_path):
    cfg = TrainConfig.model_validate({"model": {"base_model": "m", "dtype": "auto"},
                                      "dataset": {"path": str(AX / "data" / "chat.jsonl")},
                                      "sampling": {"every_n_steps": 10, "prompts": ["hi"]}, "saving": {"suffix": "demo"}})
    lf = export_config(cfg, "llamafactory")
    named = {e.key for e in lf.of("not_supported")}
    assert {"sampling.every_n_steps", "sampling.prompts", "saving.suffix"} <= named
    assert lf.data["dataset"] == "chat" and lf.files["dataset_info.json"]["chat"]["formatting"] == "sharegpt"
    assert lf.data["bf16"] is True and any(e.key == "model.dtype" and e.status == "changed" for e in lf.entries)
    ax = export_config(cfg, "axolotl")
    assert ax.data["datasets"] == [{"path": str(AX / "data" / "chat.jsonl"), "type": "chat_template", "field_messages": "messages"}]
    assert ax.data["bf16"] == "auto"
    with pytest.raises(PeerFormatError):
        export_config(cfg, "deepspeed")


def test_axolotl_export_expands_registry_entries():
    cfg = TrainConfig.model_validate({"dataset": {"path": "greet_alpaca,chat_tags,notes_text",
                                                  "dataset_dir": str(LF / "data")}})
    exported = export_config(cfg, "axolotl")
    items = exported.data["datasets"]
    assert [i["type"] for i in items] == ["alpaca", "chat_template", "completion"]
    lost = {e.key for e in exported.of("not_supported")}
    assert "dataset.path[chat_tags].columns.system" in lost  # the `sys` column has no chat_template field: named
    assert items[1]["field_messages"] == "messages" and items[1]["message_property_mappings"] == {"role": "role", "content": "content"}
    assert items[2]["field"] == "text" and all(Path(i["path"]).is_file() for i in items)


def test_llamafactory_export_of_text_registry_entries_is_stage_pt():
    cfg = TrainConfig.model_validate({"dataset": {"path": "notes_text", "dataset_dir": str(LF / "data")}})
    exported = export_config(cfg, "llamafactory")
    assert exported.data["stage"] == "pt" and exported.data["dataset"] == "notes_text"
    again, _ = import_data(exported.data, "llamafactory")
    assert again.dataset.path == "notes_text" and again.training.packing is False  # packing off is carried, not defaulted


def test_training_a_peer_file_points_at_import():
    from trainer.run_config import RunConfigError, parse_config_file

    with pytest.raises(RunConfigError) as info:
        parse_config_file(AX / "lora_local.yml")
    assert "is an axolotl config" in str(info.value)
    assert "tunepilot config import" in str(info.value) and "\n" not in str(info.value)
