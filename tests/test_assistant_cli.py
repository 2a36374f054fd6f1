"""`tunepilot ask` and `tunepilot chat` with the retriever replaced by the fake one."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.support import FakeRetriever
from tunepilot.cli.main import app


@pytest.fixture
def fake_index(monkeypatch):
    retriever = FakeRetriever()
    monkeypatch.setattr("assistant.answer.default_search", retriever)
    monkeypatch.setattr("assistant.answer.default_embed", None)
    return retriever


def test_ask_json_is_one_document(fake_index):
    out = CliRunner().invoke(app, ["ask", "What learning rate should I use for LoRA?", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["answer"] == "A typical learning rate for LoRA is 2e-4, about ten times higher than for full fine-tuning [1]."
    assert data["citations"][0] == {"n": 1, "source": "en/lora.md", "heading": "What LoRA is", "text": data["citations"][0]["text"]}
    assert data["grounded"] is True and data["engine"] == "extractive"


def test_ask_renders_markdown_with_numbered_sources(fake_index):
    out = CliRunner().invoke(app, ["ask", "LoRA 的学习率应该设多少？"])
    assert out.exit_code == 0, out.output
    assert "LoRA 的学习率通常为 2e-4" in out.stdout
    assert "Sources" in out.stdout and "[1] zh/lora.md › LoRA 简介" in out.stdout


def test_ask_not_covered(fake_index):
    out = CliRunner().invoke(app, ["ask", "How do I cook rice?", "--json"])
    data = json.loads(out.stdout)
    assert data["grounded"] is False and data["citations"] == []


def test_ask_empty_question_is_a_one_line_error(fake_index):
    out = CliRunner().invoke(app, ["ask", "   ", "--json"])
    assert out.exit_code == 2
    assert out.stderr.strip().startswith("error: the question is empty")
    assert out.stdout == ""


def test_ask_unknown_engine_is_a_one_line_error(fake_index):
    out = CliRunner().invoke(app, ["ask", "What is LoRA?", "--engine", "gpt9"])
    assert out.exit_code == 2 and "unknown engine 'gpt9'" in out.stderr


def test_chat_answers_follow_ups_resets_and_quits(fake_index):
    script = "What learning rate should I use for LoRA?\nand for QLoRA?\n/reset\nand for QLoRA?\n/quit\n"
    out = CliRunner().invoke(app, ["chat"], input=script)
    assert out.exit_code == 0, out.output
    assert fake_index.queries == ["What learning rate should I use for LoRA?",
                                  "What learning rate should I use for QLoRA?",
                                  "and for QLoRA?"]  # after /reset there is no history to carry
    assert "conversation cleared" in out.stdout


def test_chat_training_request_shows_config_and_saves_it(fake_index, tmp_path):
    target = tmp_path / "run.toml"
    script = f"fine-tune gemma-3-270m on data.jsonl with LoRA, 2 epochs, batch size 2\n{target}\n/quit\n"
    out = CliRunner().invoke(app, ["chat"], input=script)
    assert out.exit_code == 0, out.output
    assert "Training config" in out.stdout and "gemma-3-270m" in out.stdout
    assert "memory estimate:" in out.stdout
    assert target.exists()
    from trainer.planning.config_io import load_config

    cfg = load_config(target)
    assert cfg.training.epochs == 2 and cfg.training.batch_size == 2
    assert fake_index.queries == []  # a training request is not sent to retrieval


def test_chat_conflicting_request_shows_the_error_and_refuses_to_launch(fake_index):
    script = "QLoRA full fine-tune of gemma-3-270m on data.jsonl\n\n/launch\n/quit\n"
    out = CliRunner().invoke(app, ["chat"], input=script)
    assert out.exit_code == 0, out.output
    assert "which one do you want" in out.stdout
    assert "the config has validation errors" in out.stdout


def test_chat_user_mistakes_do_not_end_the_session(fake_index):
    script = "/save\n/save nope.txt\n/launch\n/bogus\nWhat learning rate should I use for LoRA?\n/quit\n"
    out = CliRunner().invoke(app, ["chat"], input=script)
    assert out.exit_code == 0, out.output
    assert "no config yet" in out.stdout
    assert "unknown command /bogus" in out.stdout
    assert "A typical learning rate" in out.stdout


def test_chat_launch_creates_a_job_from_the_last_config(fake_index, monkeypatch):
    from trainer import jobs

    created = {}

    def fake_create_job(cfg, suffix=None, **kw):
        created["cfg"] = cfg
        return {"id": "ftjob-test", "status": "queued"}

    monkeypatch.setattr(jobs, "create_job", fake_create_job)
    script = "fine-tune gemma-3-270m on data.jsonl with LoRA, 2 epochs\n\n/launch\n/quit\n"
    out = CliRunner().invoke(app, ["chat"], input=script)
    assert out.exit_code == 0, out.output
    assert "job ftjob-test queued" in out.stdout
    assert created["cfg"].training.epochs == 2 and created["cfg"].dataset.path == "data.jsonl"


def test_chat_with_unconfigured_openai_engine_still_builds_configs(fake_index, monkeypatch):
    for var in ("TUNEPILOT_OPENAI_BASE_URL", "OPENAI_BASE_URL", "TUNEPILOT_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    script = "fine-tune gemma-3-270m on data.jsonl with LoRA, 2 epochs\n\nWhat learning rate should I use for LoRA?\n/quit\n"
    out = CliRunner().invoke(app, ["chat", "--engine", "openai"], input=script)
    assert out.exit_code == 0, out.output
    text = " ".join(out.stdout.split())  # rich wraps long lines at the terminal width
    assert "deterministic parser" in text and "Training config" in text
    assert "openai engine is unavailable" in text  # the answer says it fell back


def test_ask_with_openai_engine_streams_then_prints_the_guarded_answer(fake_index, monkeypatch):
    from tests.support import FakeOpenAI

    reply = "A typical learning rate for LoRA is 2e-4, about ten times higher than for full fine-tuning [1]."
    with FakeOpenAI(lambda body: reply) as server:
        monkeypatch.setenv("TUNEPILOT_OPENAI_BASE_URL", server.base_url)
        out = CliRunner().invoke(app, ["ask", "What learning rate should I use for LoRA?", "--engine", "openai"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.stdout.split())
    assert "A typical learning rate for LoRA is 2e-4" in text and "engine: openai" in text
    assert "[1] en/lora.md" in text
