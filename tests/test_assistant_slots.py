"""The deterministic slot parser on many Chinese and English phrasings, and intent detection."""

from __future__ import annotations

import pytest

from assistant.config_from_text import detect_training_intent
from assistant.slots import (
    _MODEL_FAMILIES,
    canonical_model,
    cn_number,
    parse_float,
    parse_slots,
)
from trainer.models.catalog import FAMILIES


@pytest.mark.parametrize("text, value", [
    ("2e-4", 2e-4), ("2E-4", 2e-4), ("0.0002", 2e-4), ("2×10^-4", 2e-4), ("2*10^-4", 2e-4), ("2x10**-4", 2e-4),
    ("2·10⁻⁴", 2e-4), ("1e-5", 1e-5), ("5 e-5", 5e-5), ("3.0e-4", 3e-4), ("2 × 10^(-4)", 2e-4), ("no number", None),
])
def test_parse_float_notations(text, value):
    assert parse_float(text) == (pytest.approx(value) if value else None)


@pytest.mark.parametrize("text, value", [("三", 3), ("十", 10), ("十二", 12), ("二十", 20), ("两", 2), ("三十二", 32), ("abc", None)])
def test_chinese_numerals(text, value):
    assert cn_number(text) == value


CASES = [
    # (request, expected subset of slots)
    ("用 LoRA 在单卡 3090 上微调 qwen2.5 7b，数据 ./data/zh.jsonl，3 轮，学习率 2×10^-4",
     {"base_model": "Qwen/Qwen2.5-7B-Instruct", "method": "lora", "dataset_path": "./data/zh.jsonl", "epochs": 3,
      "learning_rate": 2e-4, "gpu": "RTX 3090"}),
    ("fine-tune llama 3 8b on data/train.jsonl with QLoRA, lr 1e-5, batch size 4 on a 24G card",
     {"base_model": "meta-llama/Meta-Llama-3-8B-Instruct", "method": "qlora", "dataset_path": "data/train.jsonl",
      "learning_rate": 1e-5, "batch_size": 4, "device_memory_gb": 24.0}),
    ("Fine-tune gemma-3-270m on ./my_data.csv for 2 epochs, learning rate 0.0002, rank 8, alpha 16, max length 2048 tokens, AdamW8bit",
     {"base_model": "gemma-3-270m", "dataset_path": "./my_data.csv", "epochs": 2, "learning_rate": 2e-4, "lora_r": 8,
      "lora_alpha": 16, "max_seq_length": 2048, "optimizer": "adamw_8bit"}),
    ("帮我用全量微调 Llama-3.1-8B，数据集 data/train.jsonl，训练三轮，批大小 8，梯度累积 4，最大长度 4096，优化器用 Lion，显存 16GB",
     {"base_model": "meta-llama/Llama-3.1-8B-Instruct", "method": "full", "epochs": 3, "batch_size": 8,
      "gradient_accumulation_steps": 4, "max_seq_length": 4096, "optimizer": "lion", "device_memory_gb": 16.0}),
    ("I want OpenAI-style defaults for gemma 3 1b on data.jsonl, paged AdamW, grad accumulation steps = 2, lr=2*10^-4, r=32",
     {"base_model": "google/gemma-3-1b-it", "openai_style": True, "optimizer": "paged_adamw_8bit",
      "gradient_accumulation_steps": 2, "learning_rate": 2e-4, "lora_r": 32}),
    ("冻结训练 chatglm3 6b，数据在 /data/chat.jsonl，验证集 /data/val.jsonl，保存到 ./out/run1，学习率 5e-5，RTX 4090",
     {"base_model": "THUDM/chatglm3-6b", "method": "freeze", "dataset_path": "/data/chat.jsonl",
      "eval_path": "/data/val.jsonl", "output_dir": "./out/run1", "learning_rate": 5e-5, "gpu": "RTX 4090"}),
    ("train on my laptop cpu, 1 epoch, dataset ./d.jsonl, not full fine-tuning but LoRA",
     {"method": "lora", "device": "cpu", "epochs": 1, "dataset_path": "./d.jsonl"}),
    ("在 A100 80G 上用 QLoRA 微调 Qwen/Qwen2.5-14B-Instruct，max_seq_length=8192，按 OpenAI 默认参数",
     {"gpu": "A100 80GB", "method": "qlora", "base_model": "Qwen/Qwen2.5-14B-Instruct", "max_seq_length": 8192, "openai_style": True}),
    ("finetune mistral 7b with adafactor, sequence length 4k, 5 epochs, bs=16",
     {"base_model": "mistralai/Mistral-7B-Instruct-v0.3", "optimizer": "adafactor", "max_seq_length": 4096,
      "epochs": 5, "batch_size": 16}),
    ("用 SGD 微调，学习率 0.01，两个 epoch，每批 2 条", {"optimizer": "sgd", "learning_rate": 0.01, "epochs": 2}),
    ("LoRA rank 64 alpha 128 on a T4", {"method": "lora", "lora_r": 64, "lora_alpha": 128, "gpu": "T4"}),
    ("秩为 8，alpha 为 16，用 4090 训练 gemma", {"lora_r": 8, "lora_alpha": 16, "gpu": "RTX 4090", "base_model": "gemma-3-270m"}),
    ("fine-tune ./models/my-qwen on chats.jsonl with 4-bit LoRA", {"method": "qlora", "dataset_path": "chats.jsonl",
                                                                    "base_model": "./models/my-qwen"}),
    ("llama 7b with LoRA", {"base_model": "meta-llama/Llama-2-7b-chat-hf"}),
    ("用本地模型 /srv/models/base7b 微调，数据 train.json", {"base_model": "/srv/models/base7b", "dataset_path": "train.json"}),
    ("fine-tune ft:gemma-3-270m:support:job-abc123 again on more.jsonl",
     {"base_model": "ft:gemma-3-270m:support:job-abc123", "dataset_path": "more.jsonl"}),
    ("全参数微调 baichuan2 13b，8-bit AdamW，梯度累加步数 8", {"method": "full", "base_model": "baichuan-inc/Baichuan2-13B-Chat",
                                                      "optimizer": "adamw_8bit", "gradient_accumulation_steps": 8}),
    ("ＬｏＲＡ 微调 qwen 0.5b，学习率 ２ｅ－４", {"method": "lora", "base_model": "Qwen/Qwen2.5-0.5B-Instruct", "learning_rate": 2e-4}),
    ("train with Lion 8bit and a learning rate of 3e-5 on H100", {"optimizer": "lion_8bit", "learning_rate": 3e-5, "gpu": "H100 80GB"}),
    ("显存只有 12G，想微调 llama 2 7b", {"device_memory_gb": 12.0, "base_model": "meta-llama/Llama-2-7b-chat-hf"}),
    ("use 2e-4 as the learning rate and accumulate gradients over 8 steps", {"learning_rate": 2e-4, "gradient_accumulation_steps": 8}),
    ("Two passes over the data, LoRA with r 32", {"epochs": 2, "lora_r": 32, "method": "lora"}),
    ("effective batch via 16 accumulation steps", {"gradient_accumulation_steps": 16}),
    ("fine tune gemma with the same defaults OpenAI uses", {"openai_style": True}),
    ("Fine-tune with LoRA on support.jsonl, eval on val.jsonl", {"dataset_path": "support.jsonl", "eval_path": "val.jsonl"}),
]


@pytest.mark.parametrize("text, expected", CASES, ids=[c[0][:40] for c in CASES])
def test_parse_slots(text, expected):
    values = parse_slots(text).values
    for slot, value in expected.items():
        got = values.get(slot)
        if isinstance(value, float):
            assert got == pytest.approx(value), f"{slot}: {got!r} from {text!r}"
        else:
            assert got == value, f"{slot}: {got!r} from {text!r}"


def test_unstated_slots_are_absent_and_evidence_is_kept():
    slots = parse_slots("fine-tune qwen2.5 7b with LoRA")
    assert set(slots.values) == {"base_model", "method"}
    assert slots.evidence["base_model"].lower() == "qwen2.5 7b"
    assert slots.evidence["method"] == "LoRA"


@pytest.mark.parametrize("text, mentioned", [
    ("QLoRA full fine-tune of llama 3 8b", ["qlora", "full"]),
    ("用 QLoRA 全量微调 qwen", ["qlora", "full"]),
    ("freeze the first layers and use LoRA", ["freeze", "lora"]),
    ("QLoRA (4-bit LoRA) on qwen", ["qlora"]),
    ("LoRA instead of full fine-tuning", ["lora"]),
])
def test_methods_mentioned_for_conflicts(text, mentioned):
    slots = parse_slots(text)
    assert slots.methods_mentioned == mentioned
    assert ("method" in slots.values) == (len(mentioned) == 1)


@pytest.mark.parametrize("family, version, size, name", [
    ("qwen", "2.5", "7b", "Qwen/Qwen2.5-7B-Instruct"), ("qwen", "3", "8b", "Qwen/Qwen3-8B"),
    ("llama", "3", "8b", "meta-llama/Meta-Llama-3-8B-Instruct"), ("llama", "3.1", "70b", "meta-llama/Llama-3.1-70B-Instruct"),
    ("gemma", "3", "270m", "gemma-3-270m"), ("gemma", None, None, "gemma-3-270m"), ("mistral", None, "7b", "mistralai/Mistral-7B-Instruct-v0.3"),
])
def test_canonical_model_names(family, version, size, name):
    assert canonical_model(family, version, size) == name


@pytest.mark.parametrize("text, intent", [
    ("fine-tune qwen2.5 7b on my data", True),
    ("帮我微调一个客服模型", True),
    ("train llama 3 8b with lr 1e-5 on 4090", True),
    ("用 LoRA 微调 gemma，数据 data.jsonl", True),
    ("I want to fine-tune gemma-3-270m with QLoRA", True),
    ("Fine-tune gemma on ./support.jsonl", True),
    ("What learning rate should I use for LoRA?", False),
    ("LoRA 是什么？", False),
    ("如何微调 qwen？", False),
    ("How does QLoRA save memory?", False),
    ("What is the capital of France?", False),
    ("", False),
])
def test_detect_training_intent(text, intent):
    assert detect_training_intent(text) is intent


# --------------------------------------------------------------------------- parser <-> catalogue

# How a request names each family of the model catalogue ({size} is the catalogue's size token),
# and the parser family (assistant.slots._MODEL_FAMILIES) that reads it.
CATALOGUE_PHRASES = {
    "qwen2.5": ("qwen", "qwen2.5 {size}"), "qwen3": ("qwen", "qwen 3 {size}"), "qwen2": ("qwen", "qwen2 {size}"),
    "llama3": ("llama", "llama 3.1 {size}"), "llama2": ("llama", "llama 2 {size}"), "llama1": ("llama", "llama 1 {size}"),
    "mistral": ("mistral", "mistral {size}"), "gemma3": ("gemma", "gemma 3 {size}"), "gemma2": ("gemma", "gemma 2 {size}"),
    "chatglm3": ("chatglm", "chatglm3 {size}"), "chatglm2": ("chatglm", "chatglm2 {size}"),
    "baichuan2": ("baichuan", "baichuan2 {size}"), "internlm2": ("internlm", "internlm2 {size}"),
    "yi": ("yi", "yi {size}"), "phi3": ("phi", "phi 3 {size}"), "phi3.5": ("phi", "phi 3.5 {size}"),
    "phi4": ("phi", "phi 4 {size}"), "deepseek": ("deepseek", "deepseek {size}"),
}
# Families whose name alone picks a size (canonical_model's defaults).
DEFAULT_SIZED = ["llama 3", "mistral", "gemma", "chatglm", "baichuan", "internlm", "deepseek", "phi 4"]


def _sized(request: str):
    from assistant.config_from_text import config_from_text
    from trainer.planning import memory
    from trainer.planning.config_io import parse_config

    result = config_from_text(f"fine-tune {request} on data.jsonl with LoRA")
    cfg = parse_config(result["config"])
    memory.estimate(cfg)  # raises EstimateError for a model it cannot size
    return cfg.model.base_model, memory.model_dims(cfg)


def test_every_parser_family_and_catalogue_family_are_paired():
    assert set(CATALOGUE_PHRASES) == {family for family, _ in FAMILIES}
    assert {parser for parser, _ in CATALOGUE_PHRASES.values()} == {family for family, _ in _MODEL_FAMILIES}


@pytest.mark.parametrize("key", sorted(FAMILIES))
def test_every_model_id_the_parser_emits_is_sized_by_the_estimator(key):
    family, size = key
    request = CATALOGUE_PHRASES[family][1].format(size=size)
    base_model, dims = _sized(request)
    assert dims == FAMILIES[key], (request, base_model)


@pytest.mark.parametrize("request_text", DEFAULT_SIZED)
def test_family_defaults_are_sized_too(request_text):
    base_model, dims = _sized(request_text)
    assert dims.total_params > 0, base_model
