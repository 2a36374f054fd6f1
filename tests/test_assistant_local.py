"""The local engine on the tiny in-process model (real transformers generation, no download)."""

from __future__ import annotations

import pytest

from assistant.answer import answer
from assistant.config_from_text import config_from_text
from assistant.engines.local_engine import LocalEngine
from tests.support import FakeRetriever


@pytest.fixture(autouse=True)
def _fresh_generation_cache():
    from trainer.models import generation

    generation.clear_cache()
    yield
    generation.clear_cache()


@pytest.mark.integration
def test_local_engine_runs_the_model_through_the_pipeline(tiny_model_dir):
    result = answer("What learning rate should I use for LoRA?", engine="local", model=str(tiny_model_dir),
                    retriever=FakeRetriever(), max_new_tokens=24)
    assert result.engine == "local"
    # The untrained tiny model babbles; the guard must not let babble pass as a grounded answer.
    if not result.grounded:
        assert result.citations == []
        assert "not supported by the retrieved documents" in result.answer
    else:
        assert all(f"[{c.n}]" in result.answer for c in result.citations)


@pytest.mark.integration
def test_local_engine_prompt_keeps_roles_and_documents_in_the_user_turn(tiny_model_dir, monkeypatch):
    from trainer.models import generation

    seen = {}

    def capture(loaded, messages_batch, max_new_tokens=128, **kw):
        seen["messages"] = messages_batch[0]
        return ["A typical learning rate for LoRA is 2e-4 [1]."]

    monkeypatch.setattr(generation, "generate", capture)
    result = answer("What learning rate should I use for LoRA?", engine="local", model=str(tiny_model_dir),
                    retriever=FakeRetriever())
    roles = [m["role"] for m in seen["messages"]]
    assert roles[0] == "system" and roles[-1] == "user"
    assert "<documents>" in seen["messages"][-1]["content"]
    assert "<documents>" not in seen["messages"][0]["content"]
    assert result.grounded and result.engine == "local"
    assert result.answer == "A typical learning rate for LoRA is 2e-4 [1]."


@pytest.mark.integration
def test_local_stream_returns_model_text(tiny_model_dir):
    from assistant.engines.base import Passage

    engine = LocalEngine(model=str(tiny_model_dir), max_new_tokens=8)
    pieces = list(engine.stream("What is LoRA?", [Passage(1, "a.md", "", "LoRA adds adapters.", "en")], "en"))
    assert len(pieces) == 1 and isinstance(pieces[0], str)


@pytest.mark.integration
def test_local_structured_output_failure_falls_back_to_the_parser(tiny_model_dir):
    engine = LocalEngine(model=str(tiny_model_dir), max_new_tokens=8, json_max_new_tokens=8)
    result = config_from_text("fine-tune gemma-3-270m on data.jsonl with LoRA, 2 epochs", engine=engine)
    assert result["config"]["training"]["epochs"] == 2
    assert result["validation"]["warnings"][0]["rule_id"] == "request.llm-fallback"


def test_unknown_local_model_is_a_user_error():
    from trainer.models.registry import ModelError

    with pytest.raises(ModelError):
        answer("What learning rate should I use for LoRA?", engine="local", model="no-such-model-xyz",
               retriever=FakeRetriever())
