"""config_from_text: the exact output shape, defaults with reasons, contradictions, and the LLM path."""

from __future__ import annotations

import pytest

from assistant.config_from_text import RequestSlots, config_from_text
from assistant.engines.base import Engine, EngineUnavailable
from trainer.planning.config_io import parse_config
from tunepilot.core.errors import UserError

# Today's shape plus what issue 13 added: the slots with their spans, what could not be read, what is
# missing, the fields the last turn changed, the fit, the target and this machine, and the reply.
KEYS = {"config", "validation", "memory_estimate", "explanations",
        "understood", "unread", "missing", "changes", "fit", "target", "this_machine", "reply"}


def test_shape_and_values_from_a_chinese_request():
    result = config_from_text("用 LoRA 在单卡 3090 上微调 qwen2.5 7b，数据 ./data/zh.jsonl，3 轮，学习率 2×10^-4")
    assert set(result) == KEYS
    cfg = parse_config(result["config"])  # a valid TrainConfig round-trips
    assert cfg.model.base_model == "Qwen/Qwen2.5-7B-Instruct"
    assert cfg.method.type == "lora"
    assert cfg.dataset.path == "./data/zh.jsonl"
    assert cfg.training.epochs == 3
    assert cfg.optimizer.learning_rate == pytest.approx(2e-4)
    assert cfg.hardware.gpu == "RTX 3090"
    assert set(result["validation"]) == {"errors", "warnings"}
    mem = result["memory_estimate"]
    assert {"total_gb", "breakdown", "device_memory_gb", "fits"} <= set(mem)
    assert mem["device_memory_gb"] == 24
    for e in result["explanations"]:
        assert set(e) == {"field", "value", "reason", "source"}
    by_field = {e["field"]: e for e in result["explanations"]}
    assert by_field["method.type"]["source"] == "request"
    assert '"LoRA"' in by_field["method.type"]["reason"]
    assert by_field["model.base_model"]["source"] == "request"


def test_missing_slots_get_defaults_with_reasons():
    result = config_from_text("fine-tune gemma-3-270m on data.jsonl")
    by_field = {e["field"]: e for e in result["explanations"]}
    assert by_field["optimizer.learning_rate"]["reason"].startswith("default of the lora preset")
    assert by_field["optimizer.learning_rate"]["source"].startswith("en/")
    assert by_field["training.epochs"]["value"] == 3
    assert result["config"]["dataset"]["path"] == "data.jsonl"


def test_rank_without_alpha_keeps_the_ratio_and_24g_sets_memory():
    result = config_from_text("LoRA rank 8 on gemma-3-270m, data.jsonl, on a 24G card")
    assert result["config"]["method"]["lora_r"] == 8
    assert result["config"]["method"]["lora_alpha"] == 16
    assert result["config"]["hardware"]["device_memory_gb"] == 24
    assert result["memory_estimate"]["device_memory_gb"] == 24


@pytest.mark.parametrize("text, fragment", [
    ("QLoRA full fine-tune of llama 3 8b on data.jsonl", "which one do you want"),
    ("用 QLoRA 全量微调 qwen2.5 7b，数据 data.jsonl", "你想用哪一种"),
])
def test_contradictory_methods_come_back_as_a_validation_error(text, fragment):
    errors = config_from_text(text)["validation"]["errors"]
    assert errors[0]["rule_id"] == "request.conflicting-methods"
    assert errors[0]["field"] == "method.type"
    assert fragment in errors[0]["message"]


def test_openai_style_defaults_use_that_preset():
    result = config_from_text("fine-tune gemma-3-270m on data.jsonl with OpenAI-style defaults")
    assert result["config"]["training"]["epochs"] == 4
    assert result["config"]["optimizer"]["lr_scheduler"] == "linear"


def test_example_count_from_an_existing_data_file_sizes_openai_style(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
                            for _ in range(3000)), encoding="utf-8")
    result = config_from_text(f"fine-tune gemma-3-270m on {data} with OpenAI-style defaults")
    t = result["config"]["training"]
    assert t["batch_size"] * t["gradient_accumulation_steps"] == 6  # 0.2% of 3000


def test_unknown_model_keeps_the_shape_with_an_estimate_error():
    result = config_from_text("fine-tune phi 3 mini on data.jsonl")
    assert set(result) == KEYS
    assert result["memory_estimate"]["total_gb"] is None
    assert "cannot estimate" in result["memory_estimate"]["error"]


def test_empty_request_is_a_user_error():
    with pytest.raises(UserError, match="request is empty"):
        config_from_text("  ")


class ScriptedEngine(Engine):
    """A fake LLM engine: returns the scripted structured outputs in order and records the calls."""

    name = "scripted"
    uses_llm = True

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = []

    def structured(self, messages, schema):
        self.calls.append(messages)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return schema.model_validate(reply)


def test_llm_structured_output_is_used_when_valid():
    engine = ScriptedEngine([{"base_model": "qwen2.5 7b", "method": "qlora", "learning_rate": 1e-4, "gpu": "4090"}])
    result = config_from_text("whatever the parser would read", engine=engine)
    assert result["config"]["model"]["base_model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert result["config"]["method"]["type"] == "qlora"
    assert result["config"]["hardware"]["gpu"] == "RTX 4090"
    assert len(engine.calls) == 1
    assert any("read by the scripted engine" in e["reason"] for e in result["explanations"])


def test_llm_gets_one_retry_with_the_formatted_problems():
    engine = ScriptedEngine([{"method": "dora", "epochs": 2}, {"method": "lora", "epochs": 2}])
    result = config_from_text("fine-tune with dora for 2 epochs", engine=engine)
    assert len(engine.calls) == 2
    feedback = engine.calls[1][-1].content
    assert "method.type" in feedback and "Fix them" in feedback
    assert result["config"]["method"]["type"] == "lora"
    assert result["config"]["training"]["epochs"] == 2


def test_llm_failing_twice_falls_back_to_the_deterministic_parser():
    engine = ScriptedEngine([{"optimizer": "nadam"}, {"optimizer": "nadam"}])
    result = config_from_text("fine-tune llama 3 8b with QLoRA on data.jsonl", engine=engine)
    assert result["config"]["method"]["type"] == "qlora"
    assert result["validation"]["warnings"][0]["rule_id"] == "request.llm-fallback"


def test_llm_endpoint_down_falls_back_to_the_deterministic_parser():
    engine = ScriptedEngine([EngineUnavailable("connection refused")])
    result = config_from_text("fine-tune gemma-3-270m on data.jsonl, 2 epochs", engine=engine)
    assert result["config"]["training"]["epochs"] == 2
    assert "connection refused" in result["validation"]["warnings"][0]["message"]


def test_request_schema_accepts_partial_output():
    assert RequestSlots.model_validate({}).method is None
