"""LLaMA-Factory's dataset_info.json as a registry: names in dataset.path, columns/tags remapped into chat
rows, concatenation in order, num_samples, ranking entries, and the one-line errors (hub entries offline,
unknown names, media columns, no registry)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trainer.data.check import check_dataset
from trainer.data.dataset_info import (
    DatasetInfoError,
    find_registry,
    looks_like_names,
    read_named,
    resolve,
)
from trainer.data.formats import DataError, load_examples, read_dataset

DATA = Path(__file__).parent / "fixtures" / "llamafactory" / "data"


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A copy of the fixture registry, so tests may add entries."""
    return Path(shutil.copytree(DATA, tmp_path / "data"))


def _add_entry(data_dir: Path, name: str, entry: dict, rows=None, file_name: str | None = None) -> None:
    info = json.loads((data_dir / "dataset_info.json").read_text())
    info[name] = entry
    (data_dir / "dataset_info.json").write_text(json.dumps(info))
    if rows is not None:
        (data_dir / (file_name or entry["file_name"])).write_text(json.dumps(rows))


@pytest.mark.parametrize("path, expected", [
    ("identity,alpaca_en_demo", True), ("greet_alpaca", True), (" a , b ", True),
    ("data/train.jsonl", False), ("train.jsonl", False), ("", False), ("a/b", False), ("notes.csv,other", False),
])
def test_looks_like_names(path, expected):
    assert looks_like_names(path) is expected


def test_an_existing_file_is_never_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("plainname").write_text('{"text": "x"}')
    assert not looks_like_names("plainname")


def test_alpaca_default_columns_read_as_llamafactory_does():
    loaded = read_dataset("greet_alpaca", dataset_dir=DATA)
    examples = loaded.examples
    assert examples[0]["messages"] == [{"role": "user", "content": "Say hello in French."},
                                       {"role": "assistant", "content": "Bonjour !"}]
    # LLaMA-Factory joins instruction and input with one newline
    assert examples[1]["messages"][0]["content"] == "Translate to German.\nGood morning"
    # history and system have no default column, so LLaMA-Factory does not read them: neither does tunepilot,
    # but it says so
    assert [m["role"] for m in examples[2]["messages"]] == ["user", "assistant"]
    assert any("history, system are not read" in w for w in loaded.warnings)
    assert loaded.fields["greet_alpaca.history"].startswith("not read")


def test_alpaca_history_and_system_columns(data_dir):
    _add_entry(data_dir, "greet_full", {"file_name": "greet_alpaca.json",
                                        "columns": {"prompt": "instruction", "query": "input", "response": "output",
                                                    "history": "history", "system": "system"}})
    loaded = read_dataset("greet_full", dataset_dir=data_dir)
    examples = loaded.examples
    assert [m["role"] for m in examples[2]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert examples[2]["messages"][0]["content"] == "How do I greet someone in Spanish?"
    assert examples[3]["messages"][0] == {"role": "system", "content": "You answer tersely."}
    assert not loaded.warnings


def test_custom_columns_are_remapped():
    examples = load_examples("quiz_columns", dataset_dir=DATA)
    assert examples[0]["messages"] == [{"role": "system", "content": "A planetary scientist"},
                                       {"role": "user", "content": "Which planet is largest?"},
                                       {"role": "assistant", "content": "Jupiter."}]
    assert examples[1]["messages"][0] == {"role": "user", "content": "How many legs does a spider have?\nCount them."}


def test_sharegpt_tags_become_chat_rows():
    examples = load_examples("chat_tags", dataset_dir=DATA)
    assert examples[0]["messages"][0] == {"role": "system", "content": "You are a maths tutor."}  # the `sys` column
    assert [m["role"] for m in examples[1]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert examples[1]["messages"][3]["content"] == "Yes, 11 is prime."


def test_several_names_are_concatenated_in_order():
    loaded = read_dataset("greet_alpaca, chat_tags,quiz_columns", dataset_dir=DATA)
    assert len(loaded.examples) == 4 + 2 + 2 and loaded.total_rows == 8
    assert loaded.examples[4]["messages"][1]["content"] == "Name a prime number."
    assert loaded.path == DATA / "dataset_info.json"
    assert "quiz_columns.answer" in loaded.fields and "greet_alpaca.instruction + input" in loaded.fields


def test_num_samples_is_a_seeded_choice():
    first = read_dataset("greet_sampled", dataset_dir=DATA).examples
    assert len(first) == 3 and first == read_dataset("greet_sampled", dataset_dir=DATA).examples
    assert all(e in load_examples("greet_alpaca", dataset_dir=DATA) for e in first)


def test_num_samples_above_the_size_repeats_the_file(data_dir):
    _add_entry(data_dir, "greet_x3", {"file_name": "greet_alpaca.json", "num_samples": 10})
    assert len(read_dataset("greet_x3", dataset_dir=data_dir).examples) == 10


def test_pretraining_entry_reads_text_rows():
    loaded = read_dataset("notes_text", dataset_dir=DATA)
    assert loaded.kind == "text" and loaded.examples[0] == {"text": "Tides are caused mainly by the Moon's gravity."}


def test_ranking_entry_is_a_preference_set():
    loaded = read_dataset("pairs", stage="dpo", dataset_dir=DATA)
    assert loaded.kind == "preference"
    assert loaded.examples[0]["chosen"] == [{"role": "assistant", "content": "Thanks for your patience; here is my answer."}]
    assert loaded.examples[0]["prompt"][-1]["role"] == "user"
    with pytest.raises(DataError, match="preference set"):
        read_dataset("pairs", dataset_dir=DATA)  # SFT cannot train on it


def test_hub_entry_offline_is_one_line_naming_the_entry_and_the_fix():
    with pytest.raises(DatasetInfoError) as info:
        read_dataset("greet_alpaca,hub_only", dataset_dir=DATA)
    message = str(info.value)
    assert "'hub_only'" in message and "hf_hub_url" in message and "file_name" in message and "\n" not in message


@pytest.mark.parametrize("name, expected", [
    ("greet_alpac", "did you mean 'greet_alpaca'"),
    ("photo_chat", "'images' column holds image inputs"),
])
def test_bad_names_and_entries(name, expected):
    with pytest.raises(DatasetInfoError, match=expected):
        read_dataset(name, dataset_dir=DATA)


def test_bad_entry_fields(data_dir):
    _add_entry(data_dir, "odd", {"file_name": "greet_alpaca.json", "formatting": "xml", "colums": {}})
    with pytest.raises(DatasetInfoError) as info:
        read_dataset("odd", dataset_dir=data_dir)
    assert "colums" in str(info.value) and "'xml' is not alpaca, sharegpt or openai" in str(info.value)
    _add_entry(data_dir, "gone", {"file_name": "missing.json"})
    with pytest.raises(DatasetInfoError, match="missing.json does not exist"):
        read_dataset("gone", dataset_dir=data_dir)


def test_bad_rows_name_their_entry(data_dir):
    _add_entry(data_dir, "broken", {"file_name": "broken.json", "columns": {"prompt": "q", "response": "a"}},
               rows=[{"q": "fine?", "a": "yes"}, {"q": "no answer here"}])
    loaded = read_dataset("greet_alpaca,broken", dataset_dir=data_dir)
    assert len(loaded.examples) == 5
    assert loaded.errors and loaded.errors[0]["message"].startswith("broken: ") and "'output'" in loaded.errors[0]["message"]


def test_explicit_format_and_kind_mixes_are_refused():
    with pytest.raises(DatasetInfoError, match="set dataset.format to auto"):
        read_dataset("greet_alpaca", fmt="alpaca", dataset_dir=DATA)
    with pytest.raises(DatasetInfoError, match="one training stage reads one kind"):
        read_dataset("greet_alpaca,notes_text", dataset_dir=DATA)


def test_registry_is_found_in_data_or_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetInfoError, match="no dataset_info.json was found"):
        read_dataset("greet_alpaca")
    shutil.copytree(DATA, tmp_path / "data")
    assert find_registry() == tmp_path / "data" / "dataset_info.json"
    assert len(read_dataset("greet_alpaca").examples) == 4  # LLaMA-Factory's default folder, data/
    assert resolve("greet_alpaca", base=tmp_path)[0].file == (tmp_path / "data" / "greet_alpaca.json").resolve()


def test_unreadable_registry(tmp_path):
    (tmp_path / "dataset_info.json").write_text("{ not json")
    with pytest.raises(DatasetInfoError, match="not valid JSON"):
        read_named("x", dataset_dir=tmp_path)


def test_data_check_reads_through_the_registry():
    report = check_dataset("greet_alpaca,chat_tags", dataset_dir=DATA)
    assert report.ok and report.n_examples == 6 and report.kind == "sft"
    bad = check_dataset("hub_only", dataset_dir=DATA)
    assert not bad.ok and "hf_hub_url" in bad.fatal


def test_launch_rules_accept_registry_names(tmp_path):
    from trainer.planning.rules import validate
    from trainer.planning.schema import TrainConfig

    ok = TrainConfig.model_validate({"dataset": {"path": "greet_alpaca", "dataset_dir": str(DATA)},
                                     "saving": {"output_dir": str(tmp_path / "out")}})
    assert not [f for f in validate(ok, for_launch=True).errors if f.rule_id == "dataset-missing"]
    bad = ok.model_copy(update={"dataset": ok.dataset.model_copy(update={"path": "hub_only"})})
    missing = [f for f in validate(bad, for_launch=True).errors if f.rule_id == "dataset-missing"]
    assert missing and "hf_hub_url" in missing[0].message


def test_run_config_resolves_the_registry_beside_the_config(tmp_path, monkeypatch):
    from trainer.run_config import load_run_config

    shutil.copytree(DATA, tmp_path / "proj" / "data")
    config = tmp_path / "proj" / "train.toml"
    config.write_text('[dataset]\npath = "greet_alpaca,chat_tags"\n')
    monkeypatch.chdir(tmp_path)  # elsewhere: the registry is still found beside the config
    cfg = load_run_config(config)
    assert cfg.dataset.path == "greet_alpaca,chat_tags"
    assert Path(cfg.dataset.dataset_dir) == (tmp_path / "proj" / "data").resolve()
    assert len(read_dataset(cfg.dataset.path, dataset_dir=cfg.dataset.dataset_dir).examples) == 6


def test_ranking_entries_for_the_preference_loader():
    from trainer.data.dataset_info import read_named_preference

    data = read_named_preference("pairs", dataset_dir=DATA)
    assert data.kind == "preference" and len(data.rows) == 2 and not data.errors
    assert data.rows[1]["rejected"] == [{"role": "assistant", "content": "Meetings are boring."}]
    with pytest.raises(DataError, match="not preference pairs"):
        read_named_preference("greet_alpaca", dataset_dir=DATA)


def test_preference_training_reads_registry_names(tiny_model_dir):
    """`dataset.path = "pairs"` under method.stage = dpo trains on the registry's ranking entry."""
    from trainer.models.generation import load_tokenizer
    from trainer.planning.schema import TrainConfig
    from trainer.training.preference import build_preference_data

    cfg = TrainConfig()
    cfg.method.stage = "dpo"
    cfg.dataset.path = "pairs"
    cfg.dataset.dataset_dir = str(DATA)
    data = build_preference_data(cfg, load_tokenizer(tiny_model_dir))
    assert len(data["train"]) == 2
    assert data["train"][1]["rejected"] == [{"role": "assistant", "content": "Meetings are boring."}]
