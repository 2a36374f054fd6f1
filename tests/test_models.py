"""Model registry, the default model's provisioning, and `tunepilot chat-model` on the tiny model."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from trainer.models import generation
from trainer.models import registry as models
from tunepilot.cli.main import app

runner = CliRunner()


def test_unknown_alias_lists_known_models():
    result = runner.invoke(app, ["chat-model", "gemma-9000", "--prompt", "hi"])
    assert result.exit_code == 2
    assert "Unknown model 'gemma-9000'" in result.output
    assert "gemma-3-270m" in result.output
    assert "Traceback" not in result.output


def test_hub_id_offline_gives_one_line_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelError, match="local folder"):
        models.resolve("someorg/not-a-real-model")


def test_models_list_json_shows_builtin_and_registered(tiny_model_dir):
    models.register_local("tiny", tiny_model_dir)
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    ids = {m["id"]: m for m in data["models"]}
    assert ids["gemma-3-270m"]["kind"] == "builtin"
    assert ids["gemma-3-270m"]["extra"]["provisioned"] is False
    assert ids["tiny"]["path"] == str(tiny_model_dir.resolve())


def test_register_rejects_folder_without_config(tmp_path):
    with pytest.raises(models.ModelError, match="config.json"):
        models.register_local("bad", tmp_path)


def test_chat_model_generates_with_template_and_stops(tiny_model_dir):
    generation.clear_cache()
    result = runner.invoke(app, ["chat-model", str(tiny_model_dir), "--prompt", "LoRA is", "--max-new-tokens", "8", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model"] == str(tiny_model_dir)
    assert isinstance(data["reply"], str)
    loaded = generation.load(str(tiny_model_dir))
    assert loaded.tokenizer.convert_tokens_to_ids("<end_of_turn>") in loaded.stop_ids


def test_batched_generation_matches_single(tiny_model_dir):
    loaded = generation.load(str(tiny_model_dir))
    convs = [generation.build_messages("hello"), generation.build_messages("微调是什么？ a longer prompt here")]
    batched = generation.generate(loaded, convs, max_new_tokens=6)
    single = [generation.generate(loaded, [c], max_new_tokens=6)[0] for c in convs]
    assert batched == single


def test_unwritable_home_is_a_clear_error(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        monkeypatch.setenv("TUNEPILOT_HOME", str(blocker / "home"))
    else:  # pragma: no cover - non-root runners
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        monkeypatch.setenv("TUNEPILOT_HOME", str(ro / "home"))
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 2
    assert "not writable" in result.output


def test_partial_default_cache_is_not_used(tunepilot_home, monkeypatch):
    """A folder left by a crashed conversion (no completion marker) is rebuilt, never loaded."""
    target = tunepilot_home / "models" / "gemma-3-270m"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    calls = []
    monkeypatch.setattr(models, "_convert_default", lambda t, progress: calls.append(t))
    models.ensure_default_model(progress=False)
    assert calls == [target]


@pytest.mark.slow
def test_default_model_provisions_and_generates():
    path = models.ensure_default_model(progress=False)
    assert (path / "model.safetensors").exists()
    loaded = generation.load("gemma-3-270m")
    assert loaded.tokenizer.chat_template
    reply = generation.generate(loaded, [generation.build_messages("LoRA is")], max_new_tokens=5)[0]
    assert isinstance(reply, str)


def test_gguf_unigram_tokenizer_is_rebuilt_as_bpe(tmp_path):
    """GGUF keeps Gemma's BPE as pieces with score = -rank; read as Unigram that splits "user" into "us"+"er"."""
    from tokenizers import Tokenizer, normalizers
    from tokenizers import models as tk_models

    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "u", "s", "e", "r", "er", "us", "▁"]
    pieces += [f"filler{i}" for i in range(40)] + ["use", "user", "▁user"]
    unigram = Tokenizer(tk_models.Unigram([(p, -float(i)) for i, p in enumerate(pieces)], unk_id=3, byte_fallback=False))
    unigram.normalizer = normalizers.Replace(" ", "▁")
    unigram.add_special_tokens(["<pad>", "<eos>", "<bos>", "<unk>"])
    path = tmp_path / "tokenizer.json"
    unigram.save(str(path))
    assert Tokenizer.from_file(str(path)).encode("user").tokens == ["us", "er"]

    models.rewrite_tokenizer_as_bpe(path, control_tokens=["<start_of_turn>"])

    bpe = Tokenizer.from_file(str(path))
    assert bpe.encode("user").tokens == ["user"]
    assert bpe.encode("<start_of_turn>user").tokens == ["<start_of_turn>", "user"]
    assert bpe.encode("user").ids == [pieces.index("user")]
