"""Config parsing and I/O: every problem in one pass, line/column for syntax errors, did-you-mean,
TOML/YAML round trips and the JSON Schema."""

from __future__ import annotations

import pytest

from trainer.planning.config_io import (
    ConfigError,
    dump_config,
    json_schema,
    load_config,
    parse_config,
    suggest,
)
from trainer.planning.presets import PRESETS, preset
from trainer.planning.schema import TrainConfig


def _messages(exc: ConfigError) -> dict[str, str]:
    return {p["loc"]: p["message"] for p in exc.problems}


def test_all_problems_collected_in_one_pass():
    data = {
        "lr": 1e-4,
        "method": {"type": "lorra", "lora_r": "sixteen"},
        "training": {"num_epochs": 3, "batch_size": [4]},
        "optimizer": {"type": "adam"},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    msgs = _messages(info.value)
    assert set(msgs) == {"lr", "method.type", "method.lora_r", "training.num_epochs", "training.batch_size", "optimizer.type"}
    assert "did you mean 'optimizer.learning_rate'" in msgs["lr"]
    assert "did you mean 'training.epochs'" in msgs["training.num_epochs"]
    assert "lora, qlora, full, freeze" in msgs["method.type"] and "did you mean 'lora'" in msgs["method.type"]
    assert "adamw, adamw_8bit, paged_adamw_8bit, lion, lion_8bit, adafactor, sgd" in msgs["optimizer.type"]
    assert "integer" in msgs["method.lora_r"]
    # str() is one problem per line, and ConfigError is a ValueError
    assert len(str(info.value).splitlines()) == 6 and isinstance(info.value, ValueError)


@pytest.mark.parametrize("key, section, expected", [
    ("lr", None, "optimizer.learning_rate"),
    ("num_epochs", "training", "training.epochs"),
    ("learning_rate", "training", "optimizer.learning_rate"),  # right key, wrong section
    ("base_model", None, "model.base_model"),  # top-level misplaced key
    ("epochs", None, "training.epochs"),
    ("lora_rank", "method", "method.lora_r"),
    ("batchsize", "training", "training.batch_size"),
    ("trainng", None, "training"),
    ("micro_batch_size", None, "training.batch_size"),
])
def test_did_you_mean(key, section, expected):
    assert suggest(key, section) == expected


def test_misplaced_top_level_key_message():
    with pytest.raises(ConfigError) as info:
        parse_config({"epochs": 3})
    assert _messages(info.value)["epochs"] == "unknown key 'epochs' at the top level; did you mean 'training.epochs'?"


def test_section_that_is_not_a_table_and_non_dict_root():
    with pytest.raises(ConfigError) as info:
        parse_config({"model": "gemma"})
    assert "table" in _messages(info.value)["model"]
    with pytest.raises(ConfigError):
        parse_config(["not", "a", "table"])


def test_lenient_keeps_the_valid_parts():
    from trainer.planning.config_io import parse_config_lenient

    cfg, problems = parse_config_lenient({"optimizer": {"learning_rate": 1e-5, "type": "nope"}, "training": {"epochs": 2}})
    assert cfg.optimizer.learning_rate == 1e-5 and cfg.optimizer.type == "adamw" and cfg.training.epochs == 2
    assert [p["loc"] for p in problems] == ["optimizer.type"]


def test_toml_syntax_error_has_line_and_column(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[model]\nbase_model = "gemma-3-270m"\n[training]\nepochs = \n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problem = info.value.problems[0]
    assert problem["loc"] == "bad.toml:4:10"
    assert "line 4, column 10" in problem["message"]


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  base_model: gemma-3-270m\n   dtype: auto\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "line 3, column 9" in info.value.problems[0]["message"]


def test_yaml_scientific_notation_is_accepted(tmp_path):
    # YAML 1.1 reads 2e-4 (no dot) as a string; the schema still takes it as a float.
    path = tmp_path / "c.yaml"
    path.write_text("optimizer:\n  learning_rate: 2e-4\n")
    assert load_config(path).optimizer.learning_rate == 2e-4


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "none.toml")
    assert "no such file" in str(info.value)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_round_trip(name, suffix, tmp_path):
    cfg = preset(name, n_examples=500)
    cfg.sampling.prompts = ["你好", "Say hi"]
    cfg.hardware.gpu = "RTX 4090"
    path = dump_config(cfg, tmp_path / f"c{suffix}")
    again = load_config(path)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()


def test_full_method_does_not_write_lora_keys(tmp_path):
    text = dump_config(preset("full"), tmp_path / "full.toml").read_text()
    assert "lora_r" not in text and "type = \"full\"" in text


def test_unknown_extension(tmp_path):
    with pytest.raises(ConfigError):
        dump_config(TrainConfig(), tmp_path / "c.txt")


def test_json_schema_describes_every_key():
    import jsonschema

    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for section in schema["properties"]:
        ref = schema["properties"][section]["$ref"].rsplit("/", 1)[-1]
        definition = schema["$defs"][ref]
        assert definition["additionalProperties"] is False
        for key, prop in definition["properties"].items():
            assert prop.get("description"), f"{section}.{key} has no description"
    jsonschema.validate(preset("lora").to_dict(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"training": {"num_epochs": 3}}, schema)


def test_one_writer_for_text_and_files(tmp_path):
    from trainer.planning.config_io import dumps_config, dumps_data, write_data

    cfg = preset("lora")
    cfg.sampling.prompts = ["你好"]
    assert dumps_config(cfg, "yaml") == dumps_data(cfg.to_dict(), "yaml") and "你好" in dumps_config(cfg, "yaml")
    path = dump_config(cfg, tmp_path / "c.json")
    assert path.read_text(encoding="utf-8") == dumps_config(cfg, "json") + "\n"
    assert dump_config(cfg, tmp_path / "c.toml").read_text(encoding="utf-8") == dumps_config(cfg, "toml")
    # plain data (kohya's files) goes through the same writer; files are replaced whole, no temp left behind
    write_data({"a": {"b": 1}}, tmp_path / "k.toml")
    assert (tmp_path / "k.toml").read_text() == "[a]\nb = 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.toml", "k.toml"]
    with pytest.raises(ConfigError, match="unknown config format"):
        dumps_data({}, "ini")
