"""Memory estimator: agreement with published figures, catalogs, local config.json dims, max batch."""

from __future__ import annotations

import json

import pytest

from trainer.config_io import parse_config
from trainer.hardware_catalog import lookup_gpu
from trainer.memory import EstimateError, estimate
from trainer.model_catalog import dims_from_folder, match_name
from trainer.presets import preset
from trainer.rules import Environment

GPU_BOX = Environment(has_cuda=True, has_bitsandbytes=True, cuda_bf16=True, cuda_memory_gb=80.0)


def cfg(name="lora", **sections):
    data = preset(name).to_dict()
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return parse_config(data)


def test_65b_qlora_fits_in_48_gb():
    # QLoRA paper: a 65B model fine-tunes on a single 48 GB GPU (r=64 on all linear layers, paged optimizer).
    c = cfg("qlora", model={"base_model": "huggyllama/llama-65b"}, hardware={"gpu": "RTX A6000"},
            method={"lora_r": 64, "lora_alpha": 16}, training={"batch_size": 1}, dataset={"max_seq_length": 512})
    est = estimate(c, env=GPU_BOX)
    assert est.device_memory_gb == 48
    assert est.fits and 35 < est.total_gb < 48
    assert 30 < est.breakdown["weights"] < 36  # NF4 ~0.52 bytes/param + 16-bit embeddings


def test_65b_does_not_fit_in_16_bit_lora():
    c = cfg("lora", model={"base_model": "llama-65b", "dtype": "bfloat16"}, hardware={"gpu": "A6000"})
    assert not estimate(c, env=GPU_BOX).fits


@pytest.mark.parametrize("dtype, expected", [("float32", 16.0), ("bfloat16", 18.0)])
def test_full_finetuning_adamw_costs_16_to_18_bytes_per_parameter(dtype, expected):
    c = cfg("full", model={"base_model": "meta-llama/Llama-2-7b-hf", "dtype": dtype}, hardware={"gpu": "A100 80G"})
    est = estimate(c, env=GPU_BOX)
    assert est.bytes_per_parameter == pytest.approx(expected, abs=0.05)
    assert not est.fits  # 7B x 16-18 bytes > 80 GB: the well-known reason for ZeRO/FSDP or LoRA


def test_optimizer_states_by_type():
    base = {"model": {"base_model": "Qwen2.5-7B", "dtype": "bfloat16"}, "hardware": {"gpu": "H100"}}
    per_param = {}
    for opt in ("adamw", "adamw_8bit", "lion", "lion_8bit", "adafactor", "sgd"):
        est = estimate(cfg("full", optimizer={"type": opt}, **base), env=GPU_BOX)
        per_param[opt] = est.breakdown["optimizer_states"] * 1024**3 / est.trainable_parameters
    assert per_param["adamw"] == pytest.approx(8, rel=0.01)
    assert per_param["adamw_8bit"] == pytest.approx(2, rel=0.01)
    assert per_param["lion"] == pytest.approx(4, rel=0.01)
    assert per_param["lion_8bit"] == pytest.approx(1, rel=0.02)
    assert per_param["adafactor"] < 0.01 and per_param["sgd"] == 0


def test_lora_trains_a_small_fraction_and_checkpointing_shrinks_activations():
    c = cfg("lora", model={"base_model": "Qwen2.5-7B-Instruct"}, hardware={"gpu": "RTX 4090"})
    plain = estimate(c, env=GPU_BOX)
    assert plain.trainable_parameters / plain.parameters < 0.01
    c.training.gradient_checkpointing = True
    ckpt = estimate(c, env=GPU_BOX)
    assert ckpt.breakdown["activations"] < plain.breakdown["activations"] / 10
    assert ckpt.breakdown["logits"] == plain.breakdown["logits"]  # checkpointing does not touch the logits


def test_logits_scale_with_vocabulary():
    gemma = estimate(cfg(model={"base_model": "gemma-3-270m"}, hardware={"gpu": "T4"}), env=GPU_BOX)
    # 4 x 1024 tokens x 262144 vocab x (3 float32 copies + fp16) = 14 GiB
    assert gemma.breakdown["logits"] == pytest.approx(14.0, rel=0.01)
    assert gemma.dtype == "float16"  # T4 has no bf16


def test_max_batch_size_is_the_largest_that_fits():
    c = cfg(hardware={"gpu": "RTX 4090"}, model={"base_model": "Qwen2.5-1.5B"})
    est = estimate(c, env=GPU_BOX)
    n = est.max_batch_size
    assert n >= 1
    c.training.batch_size = n
    assert estimate(c, env=GPU_BOX).fits
    c.training.batch_size = n + 1
    assert not estimate(c, env=GPU_BOX).fits


def test_to_dict_shape_and_device_memory_sources():
    c = cfg(hardware={"device_memory_gb": 11.0, "gpu": "RTX 4090"})
    d = estimate(c, env=GPU_BOX).to_dict()
    assert {"total_gb", "breakdown", "device_memory_gb", "fits", "max_batch_size"} <= set(d)
    assert d["device_memory_gb"] == 11.0  # explicit memory beats the catalog
    assert set(d["breakdown"]) == {"weights", "trainable_weights", "gradients", "optimizer_states", "activations", "logits", "overhead"}
    assert d["total_gb"] == pytest.approx(sum(d["breakdown"].values()), abs=0.02)
    c.hardware.device_memory_gb = None
    assert estimate(c, env=GPU_BOX).device_memory_gb == 24
    cpu = estimate(cfg(training={"device": "cpu"}), env=Environment())
    import psutil

    assert cpu.device == "cpu" and cpu.device_memory_gb == pytest.approx(psutil.virtual_memory().total / 1024**3, abs=0.1)


def test_unknown_model_raises_with_the_fix():
    with pytest.raises(EstimateError, match="local model folder"):
        estimate(cfg(model={"base_model": "my-mystery-model"}), env=GPU_BOX)


def test_dims_from_a_local_config_json(tiny_model_dir):
    dims = dims_from_folder(tiny_model_dir)
    assert dims.hidden_size == 32 and dims.num_layers == 2 and dims.vocab_size > 0
    assert dims.source.endswith("config.json")
    est = estimate(cfg(model={"base_model": str(tiny_model_dir)}, training={"device": "cpu"}), env=Environment())
    # exact parameter count from the safetensors header
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert est.parameters == sum(p.numel() for p in model.parameters())


def test_default_model_resolves_without_provisioning(tunepilot_home):
    # Not provisioned in this workspace: falls back to the built-in table, and nothing is downloaded.
    est = estimate(cfg(training={"device": "cpu"}), env=Environment())
    assert est.model == "gemma-3-270m" and 260e6 < est.parameters < 275e6
    assert not any((tunepilot_home / "models").glob("gemma-3-270m/*.safetensors"))


def test_default_model_folder_is_read_when_provisioned(tunepilot_home):
    folder = tunepilot_home / "models" / "gemma-3-270m"
    folder.mkdir(parents=True)
    config = {"model_type": "gemma3_text", "hidden_size": 640, "intermediate_size": 2048, "num_hidden_layers": 18,
              "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262144,
              "max_position_embeddings": 32768}
    (folder / "config.json").write_text(json.dumps(config))
    est = estimate(cfg(training={"device": "cpu"}), env=Environment())
    assert est.dims_source.endswith("config.json") and 260e6 < est.parameters < 275e6


@pytest.mark.parametrize("name, params_b", [
    ("Qwen2.5-7B-Instruct", 7.6), ("qwen2.5-0.5b", 0.49), ("Qwen/Qwen2.5-72B", 72.7), ("llama-3-8b", 8.0),
    ("meta-llama/Llama-3.2-1B-Instruct", 1.24), ("Llama-3.1-70B", 70.6), ("Llama-2-13b-chat-hf", 13.0),
    ("mistralai/Mistral-7B-v0.1", 7.24), ("google/gemma-3-27b-it", 27.0), ("gemma-3-270m", 0.268),
    ("THUDM/chatglm3-6b", 6.2), ("baichuan-inc/Baichuan2-7B-Chat", 7.5),
])
def test_family_table_matches_published_sizes(name, params_b):
    dims = match_name(name)
    assert dims is not None
    assert dims.total_params / 1e9 == pytest.approx(params_b, rel=0.03)


@pytest.mark.parametrize("name, expected", [
    ("4090", ("RTX 4090", 24)), ("RTX 4090", ("RTX 4090", 24)), ("A100 80G", ("A100 80GB", 80)),
    ("a100-80gb", ("A100 80GB", 80)), ("A100", ("A100 40GB", 40)), ("H100", ("H100 80GB", 80)),
    ("T4", ("T4", 16)), ("NVIDIA GeForce RTX 3060", ("RTX 3060", 12)), ("rtx a6000", ("RTX A6000", 48)),
    ("H200", ("H200 141GB", 141)), ("L4", ("L4", 24)), ("v100 32gb", ("V100 32GB", 32)), ("A10", ("A10", 24)),
])
def test_gpu_catalog_fuzzy_lookup(name, expected):
    gpu = lookup_gpu(name)
    assert (gpu.name, gpu.memory_gb) == expected


@pytest.mark.parametrize("name", ["", None, "Voodoo 5", "A100 13G", "4090 48GB"])
def test_gpu_catalog_unknown(name):
    assert lookup_gpu(name) is None
