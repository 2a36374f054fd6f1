"""The conversation's draft (issue 13): turns edit it, questions keep it, "start over" resets it,
each reply shows what changed and what is missing; the same through `tunepilot config --from-text`
repeated and `tunepilot chat`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from assistant.config_from_text import config_from_text, converse
from assistant.draft import Draft, diff_configs
from tunepilot.cli.main import app


def test_later_turns_edit_the_draft_and_the_reply_shows_the_diff():
    draft = Draft()
    first = draft.update("fine-tune gemma-3-270m on data.jsonl")
    assert first["changes"] == [] and first["config"]["training"]["epochs"] == 3
    second = draft.update("make it 5 epochs and rank 32")
    changed = {c["field"]: (c["from"], c["to"]) for c in second["changes"]}
    assert changed["training.epochs"] == (3, 5) and changed["method.lora_r"] == (16, 32)
    assert second["config"]["dataset"]["path"] == "data.jsonl"  # earlier turns are kept
    assert "training.epochs: 3" in second["reply"] and "→ 5" in second["reply"]


def test_questions_in_between_do_not_lose_the_draft():
    draft = Draft()
    converse(draft, "fine-tune qwen2.5 7b on support.jsonl with LoRA")
    kind, result = converse(draft, "What does lora alpha do?")
    assert kind == "question" and result is None
    kind, result = converse(draft, "set alpha to 64")
    assert kind == "edit" and result["config"]["method"]["lora_alpha"] == 64
    assert result["config"]["model"]["base_model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert result["config"]["method"]["type"] == "lora"


def test_chinese_edits_switch_method_and_memory():
    draft = Draft()
    draft.update("用 LoRA 微调 llama 3 8b，数据 data.jsonl")
    result = draft.update("换成 QLoRA，我只有 12G")
    assert result["config"]["method"]["type"] == "qlora"
    assert result["config"]["hardware"]["device_memory_gb"] == 12
    assert result["target"]["kind"] == "gpu-memory" and result["fit"]["fits"] is True
    assert "改动" in result["reply"]


def test_start_over_resets_the_draft():
    draft = Draft()
    converse(draft, "fine-tune gemma-3-270m on a.jsonl for 2 epochs")
    assert converse(draft, "start over") == ("reset", None)
    assert not draft.active
    kind, result = converse(draft, "fine-tune qwen2.5 0.5b on b.jsonl")
    assert kind == "edit" and result["config"]["training"]["epochs"] == 3


def test_missing_dataset_is_asked_for_never_invented():
    result = config_from_text("fine-tune gemma-3-270m with LoRA")
    assert result["config"]["dataset"]["path"] == ""
    assert result["missing"] == ["dataset.path"] and "Still missing" in result["reply"]


def test_nonsense_gets_a_reply_asking_for_model_and_dataset():
    result = config_from_text("asdf qwerty zxcv")
    assert "model and the dataset" in result["reply"]
    zh = config_from_text("随便说点什么吧")
    assert "模型和数据集" in zh["reply"]


def test_unread_and_conflicts_are_flagged_and_settled_by_a_later_turn():
    draft = Draft()
    result = draft.update("fine-tune gemma-3-270m on faq.jsonl, learning rate 5e, 3 epochs, epochs=5")
    assert any("rate 5e" in u for u in result["unread"])
    rules = {f["rule_id"] for f in result["validation"]["errors"] + result["validation"]["warnings"]}
    assert {"request.unread", "request.conflicting-values"} <= rules
    fixed = draft.update("learning rate 5e-5, 4 epochs")
    assert fixed["unread"] == [] and fixed["config"]["training"]["epochs"] == 4
    assert not [f for f in fixed["validation"]["errors"] if f["rule_id"].startswith("request.")]


def test_invalid_values_are_kept_and_flagged():
    result = config_from_text("train gemma-3-270m with learning rate -3 for 0 epochs on data.jsonl")
    assert result["config"]["optimizer"]["learning_rate"] == -3 and result["config"]["training"]["epochs"] == 0
    flagged = {f["field"] for f in result["validation"]["errors"]}
    assert {"optimizer.learning_rate", "training.epochs"} <= flagged


def test_a_named_gpu_is_the_target_and_this_machine_is_reported_apart():
    result = config_from_text("QLoRA of llama 3 8b on an RTX 4090, dataset support.jsonl")
    assert result["target"]["label"].startswith("RTX 4090") and result["fit"]["fits"] is True
    assert not [f for f in result["validation"]["errors"] if f["rule_id"] == "qlora-needs-cuda"]
    assert result["this_machine"]["label"].startswith("this machine")
    assert result["memory_estimate"]["fits"] is True


def test_understood_lists_field_value_span():
    result = config_from_text(["fine-tune NousResearch/Llama-3.2-1B on d.jsonl", "rank 8"])
    by_field = {u["field"]: u for u in result["understood"]}
    assert by_field["model.base_model"]["value"] == "NousResearch/Llama-3.2-1B"
    assert by_field["method.lora_r"] == {"field": "method.lora_r", "value": 8, "span": [0, 6], "text": "rank 8", "turn": 2}
    assert result["config"]["model"]["base_model"] == "NousResearch/Llama-3.2-1B"


def test_diff_configs():
    assert diff_configs({"a": {"x": 1}}, {"a": {"x": 2, "y": 3}}) == [{"field": "a.x", "from": 1, "to": 2},
                                                                      {"field": "a.y", "from": None, "to": 3}]


# ---------------------------------------------------------------- through the real CLI

def test_cli_repeated_from_text_is_one_conversation(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run.toml"
    result = runner.invoke(app, ["config", "--from-text", "fine-tune gemma-3-270m on data.jsonl",
                                 "--from-text", "how much memory will that need?",
                                 "--from-text", "make it 5 epochs and rank 32", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["config"]["training"]["epochs"] == 5 and data["config"]["method"]["lora_r"] == 32
    assert {"config", "validation", "memory_estimate", "explanations", "understood", "unread"} <= set(data)
    assert [u["field"] for u in data["understood"] if u["turn"] == 3] == ["training.epochs", "method.lora_r"]
    from trainer.planning.config_io import load_config

    assert load_config(out).training.epochs == 5


def test_cli_chat_edits_the_draft_between_questions(monkeypatch):
    from tests.support import FakeRetriever

    retriever = FakeRetriever()
    monkeypatch.setattr("assistant.answer.default_search", retriever)
    monkeypatch.setattr("assistant.answer.default_embed", None)
    script = ("fine-tune gemma-3-270m on data.jsonl with LoRA\n\nWhat learning rate should I use for LoRA?\n"
              "rank 32\nstart over\n/quit\n")
    result = CliRunner().invoke(app, ["chat"], input=script)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert retriever.queries == ["What learning rate should I use for LoRA?"]  # the question was answered
    assert "method.lora_r: 16 → 32" in text  # and the draft survived it
    assert "Started over" in text


def test_with_an_llm_engine_the_llm_fills_the_slots_and_the_same_fit_runs():
    from tests.test_assistant_config import ScriptedEngine

    engine = ScriptedEngine([{"base_model": "llama 3 8b", "method": "lora", "dataset_path": "d.jsonl"},
                             {"method": "qlora", "device_memory_gb": 12}])
    result = config_from_text(["fine-tune llama 3 8b on d.jsonl with LoRA", "switch to QLoRA, I only have 12 GB"], engine=engine)
    assert len(engine.calls) == 2
    assert result["config"]["method"]["type"] == "qlora" and result["config"]["dataset"]["path"] == "d.jsonl"
    assert result["target"]["kind"] == "gpu-memory" and result["fit"]["fits"] is True  # fitted, not only validated
    assert any(u["field"] == "hardware.device_memory_gb" and u["turn"] == 2 for u in result["understood"])
    assert any("read by the scripted engine" in e["reason"] for e in result["explanations"])
