"""`tunepilot config import` / `config export` through the real command (a subprocess), on configs in both
peers' formats, and a tiny training run that reads its data through a dataset_info.json registry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"
CASES = [FIXTURES / "llamafactory" / "lora_sft.yaml", FIXTURES / "llamafactory" / "upstream" / "qwen3_lora_dpo.yaml",
         FIXTURES / "axolotl" / "lora_local.yml",
         FIXTURES / "axolotl" / "upstream" / "llama-2__lora.yml"]


def tunepilot(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "tunepilot.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


@pytest.mark.parametrize("source", CASES, ids=lambda p: p.name)
def test_import_json_then_validate_passes(source, tmp_path):
    out = tmp_path / "imported.toml"
    # the peers' examples target NVIDIA GPUs (QLoRA, bf16): validate for one, not for this test machine
    proc = tunepilot("config", "import", source, "--out", out, "--gpu", "A100 80G", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # exactly one JSON document
    expected = "llamafactory" if "llamafactory" in str(source) else "axolotl"
    assert report["format"] == expected and report["path"] == str(out)
    keys = set(yaml.safe_load(source.read_text()))
    reported = {e["key"].split(".")[0].split("[")[0] for s in ("mapped", "changed", "not_supported", "empty") for e in report[s]}
    assert reported == keys
    assert all(e["nearest"] for e in report["not_supported"])
    assert report["validation"]["ok"], report["validation"]
    proc = tunepilot("config", "validate", out, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ok"] is True


def test_validate_on_a_peer_file_is_one_line():
    proc = tunepilot("config", "validate", FIXTURES / "axolotl" / "lora_local.yml", "--json")
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert [e["rule_id"] for e in report["errors"]] == ["peer-format"] and report["warnings"] == []
    assert "axolotl config" in report["errors"][0]["message"] and "tunepilot config import" in report["errors"][0]["message"]


def test_import_of_neither_format_is_a_one_line_error(tmp_path):
    proc = tunepilot("config", "import", FIXTURES / "axolotl" / "neither.yaml", "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "known formats" in proc.stderr and "Traceback" not in proc.stderr


def test_table_output_lists_every_status():
    proc = tunepilot("config", "import", FIXTURES / "axolotl" / "upstream" / "llama-2__lora.yml")
    assert proc.returncode == 0, proc.stderr
    for word in ("mapped", "changed", "not supported", "empty", "load_in_8bit", "saves_per_epoch"):
        assert word in proc.stdout


def test_export_round_trip_through_the_cli(tmp_path):
    imported = tmp_path / "c.toml"
    assert tunepilot("config", "import", FIXTURES / "llamafactory" / "lora_sft.yaml", "--out", imported).returncode == 0
    for to, name in (("llamafactory", "lf.yaml"), ("axolotl", "ax.yml")):
        proc = tunepilot("config", "export", imported, "--to", to, "--out", tmp_path / name, "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["path"] == str(tmp_path / name)
        again = tmp_path / f"again-{to}.toml"
        proc = tunepilot("config", "import", tmp_path / name, "--out", again, "--json")
        assert proc.returncode == 0, proc.stderr
        first, second = (Path(p).read_text() for p in (imported, again))
        if to == "llamafactory":
            assert first == second
        else:  # axolotl gets the registry's files; everything else is the same
            a, b = (yaml.safe_load(json.dumps(__import__("tomllib").loads(t))) for t in (first, second))
            for cfg in (a, b):
                cfg["dataset"].pop("path"), cfg["dataset"].pop("dataset_dir", None), cfg["dataset"].pop("format")
            assert a == b


def test_export_of_a_data_file_writes_a_registry_llamafactory_can_read(tmp_path):
    data = tmp_path / "train.jsonl"
    shutil.copy(FIXTURES / "axolotl" / "data" / "chat.jsonl", data)
    config = tmp_path / "c.toml"
    config.write_text(f'[dataset]\npath = "{data}"\n')
    out = tmp_path / "export" / "lf.yaml"
    out.parent.mkdir()
    proc = tunepilot("config", "export", config, "--to", "llamafactory", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    exported = yaml.safe_load(out.read_text())
    assert exported["dataset"] == "train" and exported["dataset_dir"] == str(out.parent.resolve())
    from trainer.data.formats import read_dataset

    # the written registry, read back by tunepilot's own registry reader, gives the same rows as the file
    assert read_dataset("train", dataset_dir=exported["dataset_dir"]).examples == read_dataset(data).examples
    proc = tunepilot("config", "export", config, "--to", "llamafactory", "--out", out)
    assert proc.returncode == 2 and "already exists" in proc.stderr  # never replaces a registry


def test_training_reads_registry_names(tmp_path, tiny_model_dir):
    from tests.support import make_cfg
    from trainer.training.recipe import train

    shutil.copytree(FIXTURES / "llamafactory" / "data", tmp_path / "data")
    cfg = make_cfg(tmp_path, tiny_model_dir, dataset__path="greet_alpaca,chat_tags,quiz_columns",
                   dataset__dataset_dir=str(tmp_path / "data"), training__max_steps=2)
    result = train(cfg, tmp_path / "out")
    assert result.status == "succeeded" and result.global_step == 2


def test_data_check_cli_reads_registry_names(tmp_path):
    shutil.copytree(FIXTURES / "llamafactory" / "data", tmp_path / "data")
    proc = tunepilot("data", "check", "greet_alpaca,chat_tags", "--json", cwd=tmp_path)  # data/ is the default folder
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["n_examples"] == 6 and "chat_tags.sys" in report["fields"]
    proc = tunepilot("data", "check", "hub_only", "--dataset-dir", tmp_path / "data")
    assert proc.returncode == 2 and "hf_hub_url" in proc.stderr and "file_name" in proc.stderr
