"""Presets and their explanations: openai-style sizing from the example count, every important value explained."""

from __future__ import annotations

import pytest

from trainer.planning.presets import (
    PRESETS,
    PresetError,
    explain,
    openai_batch_size,
    preset,
    split_batch,
)


@pytest.mark.parametrize("n, batch", [(None, 4), (10, 1), (300, 1), (1000, 2), (5000, 10), (100_000, 200), (10_000_000, 256)])
def test_openai_batch_is_0_2_percent_clamped(n, batch):
    assert openai_batch_size(n) == batch


@pytest.mark.parametrize("n, lr", [(300, 1e-4), (5000, 2e-4), (100_000, 4e-4)])
def test_openai_style_scales_learning_rate_with_batch(n, lr):
    cfg = preset("openai-style", n_examples=n)
    assert cfg.training.epochs == 4
    assert cfg.optimizer.learning_rate == pytest.approx(lr)
    assert cfg.training.batch_size * cfg.training.gradient_accumulation_steps == openai_batch_size(n)
    assert cfg.training.batch_size <= 8


@pytest.mark.parametrize("effective", [1, 7, 10, 64, 200, 256])
def test_split_batch_is_exact(effective):
    device, accumulation = split_batch(effective)
    assert device * accumulation == effective and 1 <= device <= 8


def test_openai_style_explanation_shows_the_numbers():
    items = {e["field"]: e for e in explain(preset("openai-style", n_examples=5000), n_examples=5000)}
    assert "0.2% of 5000 examples = 10" in items["training.batch_size"]["reason"]
    assert "5 per step x 2 accumulation steps" in items["training.batch_size"]["reason"]
    assert "500 optimizer steps per epoch, 2000 in total" in items["training.epochs"]["reason"]
    assert "multiplier 0.1" in items["optimizer.learning_rate"]["reason"]


def test_presets_differ_where_they_should():
    lora, qlora, full, freeze = (preset(n) for n in ("lora", "qlora", "full", "freeze"))
    assert (lora.method.type, qlora.method.type, full.method.type, freeze.method.type) == ("lora", "qlora", "full", "freeze")
    assert full.optimizer.learning_rate < freeze.optimizer.learning_rate < lora.optimizer.learning_rate
    assert qlora.optimizer.type == "paged_adamw_8bit" and qlora.training.gradient_checkpointing
    assert freeze.method.freeze_trainable_layers >= 1


def test_small_data_caps_the_effective_batch():
    cfg = preset("lora", n_examples=6)
    assert cfg.training.batch_size * cfg.training.gradient_accumulation_steps <= 6


@pytest.mark.parametrize("name", PRESETS)
def test_explain_covers_important_fields_with_sources(name):
    items = explain(preset(name), n_examples=1000)
    fields = {e["field"] for e in items}
    assert {"method.type", "optimizer.learning_rate", "optimizer.type", "training.epochs", "training.batch_size",
            "dataset.max_seq_length", "training.gradient_checkpointing"} <= fields
    for item in items:
        assert set(item) >= {"field", "value", "reason", "source"}
        assert item["source"].startswith("en/") and item["reason"]
    if name in ("lora", "qlora", "openai-style"):
        assert {"method.lora_r", "method.lora_alpha"} <= fields


def test_unknown_preset():
    with pytest.raises(PresetError, match="lora, qlora, full, freeze, openai-style"):
        preset("ultra")
