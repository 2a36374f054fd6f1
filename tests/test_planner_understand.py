"""Understand (issue 13): every value becomes a slot with its span; invalid values are kept; what
cannot be read is named; model ids are kept verbatim; contradictions are reported."""

from __future__ import annotations

import pytest

from assistant.understand import is_question, understand


def values(text: str) -> dict:
    return understand(text).values()


def test_every_slot_carries_the_span_it_came_from():
    u = understand("fine-tune gemma-3-270m on data.jsonl, lr 1e-4, 5 epochs")
    assert {s.field for s in u.slots} == {"model.base_model", "dataset.path", "optimizer.learning_rate", "training.epochs"}
    for s in u.slots:
        start, end = s.span
        assert u.text[start:end].strip() == s.text and s.text
    assert u.slot("optimizer.learning_rate").text == "lr 1e-4"
    assert u.slot("training.epochs").text == "5 epochs"


@pytest.mark.parametrize("text, expected", [
    ("learning rate -3 for 0 epochs", {"optimizer.learning_rate": -3.0, "training.epochs": 0}),
    ("学习率 -3，训练 0 轮", {"optimizer.learning_rate": -3.0, "training.epochs": 0}),
    ("rank 0, batch size 0, dropout 1.5", {"method.lora_r": 0, "training.batch_size": 0, "method.lora_dropout": 1.5}),
    ("a validation split of 150%, weight decay -0.1", {"dataset.val_split": 1.5, "optimizer.weight_decay": -0.1}),
])
def test_invalid_values_are_kept_as_given(text, expected):
    got = values(text)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), (name, got)


@pytest.mark.parametrize("text, expected", [
    ("dropout 0.1, warmup 10%, max_steps 200, gradient checkpointing on, bs=16",
     {"method.lora_dropout": 0.1, "optimizer.warmup_ratio": 0.1, "training.max_steps": 200,
      "training.gradient_checkpointing": True, "training.batch_size": 16}),
    ("2k tokens max, 4 GB", {"dataset.max_seq_length": 2048, "hardware.device_memory_gb": 4}),
    ("上下文长度 4k，我只有 12G", {"dataset.max_seq_length": 4096, "hardware.device_memory_gb": 12}),
    ("lr=2*10^-4, seed 7, cosine schedule, packing, bf16",
     {"optimizer.learning_rate": 2e-4, "training.seed": 7, "optimizer.lr_scheduler": "cosine",
      "training.packing": True, "model.dtype": "bfloat16"}),
    ("effective batch size 32, save a checkpoint every 100 steps",
     {"training.effective_batch": 32, "saving.save_every_n_steps": 100}),
    ("without gradient checkpointing", {"training.gradient_checkpointing": False}),
])
def test_units_and_settings_people_write(text, expected):
    got = values(text)
    for name, value in expected.items():
        assert got.get(name) == (pytest.approx(value) if isinstance(value, float) else value), (name, got)


@pytest.mark.parametrize("text, piece", [
    ("fine-tune gemma-3-270m on faq.jsonl, learning rate 5e", "rate 5e"),
    ("学习率 0.5e，数据 data.jsonl", "学习率 0.5e"),
    ("epochs: lots", "epochs: lots"),
    ("warmup 100 steps", "warmup 100 steps"),
])
def test_settings_that_cannot_be_read_are_named(text, piece):
    u = understand(text)
    assert any(piece in entry for entry in u.unread), u.unread
    assert "optimizer.learning_rate" not in u.values()


@pytest.mark.parametrize("text, model", [
    ("fine-tune NousResearch/Llama-3.2-1B on data.jsonl", "NousResearch/Llama-3.2-1B"),
    ("train TinyLlama/TinyLlama-1.1B-Chat-v1.0", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"),
    ("use meta-llama/Llama-3.1-8B (the base, not instruct)", "meta-llama/Llama-3.1-8B"),
    ("fine-tune ./models/my-qwen on chats.jsonl", "./models/my-qwen"),
])
def test_model_ids_are_kept_verbatim(text, model):
    u = understand(text)
    assert u.values()["model.base_model"] == model
    assert not u.slot("model.base_model").note


def test_a_bare_family_name_is_resolved_and_says_to_what():
    slot = understand("fine-tune llama 3 8b with LoRA").slot("model.base_model")
    assert slot.value == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert "resolved to meta-llama/Meta-Llama-3-8B-Instruct" in slot.note


@pytest.mark.parametrize("text, params", [("full fine-tune of a 3B model", 3_000_000_000),
                                          ("训练一个 0.5B 的模型", 500_000_000), ("a 13b model", 13_000_000_000)])
def test_a_size_alone_becomes_a_parameter_count(text, params):
    got = values(text)
    assert got["model.size"] == params and "model.base_model" not in got


@pytest.mark.parametrize("text, gpu, memory", [
    ("on an RTX 4090", "RTX 4090", None), ("在 A100 80G 上", "A100 80GB", None),
    ("on my 16 GB GPU", None, 16), ("用 8GB 的 RTX 4060", "RTX 4060", None), ("显存 24GB", None, 24),
])
def test_gpu_names_and_memory(text, gpu, memory):
    got = values(text)
    assert got.get("hardware.gpu") == gpu and got.get("hardware.device_memory_gb") == memory


def test_pasted_peer_yaml_is_read_and_unknown_keys_are_named():
    text = ("base_model: Qwen/Qwen2.5-0.5B\nadapter: lora\nlora_r: 32\nsequence_len: 2048\nmicro_batch_size: 2\n"
            "num_epochs: 2\nlearning_rate: 0.0002\noptimizer: adamw_torch\nstage: sft\ndatasets:\n  - path: data/alpaca.json")
    u = understand(text)
    assert u.values() == {"model.base_model": "Qwen/Qwen2.5-0.5B", "method.type": "lora", "method.lora_r": 32,
                          "dataset.max_seq_length": 2048, "training.batch_size": 2, "training.epochs": 2,
                          "optimizer.learning_rate": 0.0002, "optimizer.type": "adamw", "dataset.path": "data/alpaca.json"}
    assert "stage: sft" in u.unread


def test_inline_key_values_with_negative_numbers():
    assert values("lr=-0.5, epochs=0, rank=-4 on gemma-3-270m") == {
        "optimizer.learning_rate": -0.5, "training.epochs": 0, "method.lora_r": -4, "model.base_model": "gemma-3-270m"}


@pytest.mark.parametrize("text, name", [("3 epochs, epochs=5", "training.epochs"),
                                        ("学习率 2e-4，学习率 1e-5", "optimizer.learning_rate")])
def test_one_field_twice_with_different_values_is_a_conflict(text, name):
    assert [c["field"] for c in understand(text).conflicts] == [name]


@pytest.mark.parametrize("text, mentioned", [("a full fine-tune with LoRA", ["full", "lora"]),
                                             ("用 LoRA 做全量微调", ["lora", "full"]),
                                             ("no, use full fine-tuning instead", ["full"])])
def test_methods_mentioned(text, mentioned):
    assert understand(text).methods_mentioned == mentioned


def test_a_lora_setting_does_not_choose_the_method_explicitly():
    u = understand("set lora alpha to 64")
    assert u.values()["method.lora_alpha"] == 64 and "method.type" in u.implied


@pytest.mark.parametrize("text, question", [
    ("What does lora alpha do?", True), ("这需要多少显存？", True), ("should I use QLoRA?", True),
    ("can you set alpha to 64?", False), ("make it 5 epochs and rank 32", False), ("我只有 12G", False),
])
def test_questions_and_edits(text, question):
    assert is_question(understand(text).text, understand(text)) is question


def test_reset_words():
    assert understand("start over").reset and understand("重新开始").reset and not understand("start with LoRA").reset


@pytest.mark.parametrize("text, expected", [
    ("train for 1000 steps with batch 32", {"training.max_steps": 1000, "training.batch_size": 32}),
    ("a learning rate of 2×10^-4 on a T4", {"optimizer.learning_rate": 2e-4, "hardware.gpu": "T4"}),
    ("LoRA with r 32.", {"method.lora_r": 32}),
    ("target q_proj,v_proj, ga 4, 1024 ctx", {"method.target_modules": ["q_proj", "v_proj"],
                                              "training.gradient_accumulation_steps": 4, "dataset.max_seq_length": 1024}),
    ("用4张A100训练", {"hardware.gpu_count": 4, "hardware.gpu": "A100 40GB"}),
])
def test_more_phrasings(text, expected):
    got = values(text)
    for name, value in expected.items():
        assert got.get(name) == (pytest.approx(value) if isinstance(value, float) else value), (name, got)


@pytest.mark.parametrize("text, model", [("mistral-7b-instruct-v0.2 with qlora", "mistral-7b-instruct-v0.2"),
                                         ("train phi-3-mini on notes.jsonl", "phi-3-mini")])
def test_a_specific_name_the_resolver_cannot_reproduce_is_kept_as_written(text, model):
    assert values(text)["model.base_model"] == model


def test_numbers_no_pattern_reads_are_named_not_dropped():
    u = understand("fine-tune gemma-3-270m on data.jsonl with temperature 0.7")
    assert u.unread == ["temperature 0.7"]
