"""Memory estimator: agreement with published figures, catalogs, local config.json dims, max batch."""

from __future__ import annotations

import json

import pytest

from tests.support import chat_row, write_jsonl
from tests.support import preset_cfg as cfg
from trainer.models.catalog import dims_from_folder, match_name
from trainer.models.device import Environment
from trainer.planning.hardware import lookup_gpu
from trainer.planning.memory import EstimateError, estimate

GPU_BOX = Environment(has_cuda=True, has_bitsandbytes=True, cuda_bf16=True, cuda_memory_gb=80.0)


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
        est = estimate(cfg("lora", optimizer={"type": opt}, **base), env=GPU_BOX)
        per_param[opt] = est.breakdown["optimizer_states"] * 1024**3 / est.trainable_parameters
    assert per_param["adamw"] == pytest.approx(8, rel=0.01)
    assert per_param["adamw_8bit"] == pytest.approx(2, rel=0.01)
    assert per_param["lion"] == pytest.approx(4, rel=0.01)
    assert per_param["lion_8bit"] == pytest.approx(1, rel=0.02)
    assert per_param["adafactor"] < 0.01 and per_param["sgd"] == 0


@pytest.mark.parametrize("opt, eight_bit, thirty_two_bit", [("adamw_8bit", 2, 8), ("paged_adamw_8bit", 2, 8), ("lion_8bit", 1, 4)])
def test_full_finetuning_8bit_optimizers_keep_embeddings_in_32_bit(opt, eight_bit, thirty_two_bit):
    # transformers' Trainer overrides every nn.Embedding to 32-bit states when it builds a bitsandbytes
    # 8-bit optimizer; for Gemma (tied, 262k vocabulary) that is 63% of the parameters.
    for name in ("gemma-3-270m", "Qwen2.5-7B"):
        est = estimate(cfg("full", model={"base_model": name}, optimizer={"type": opt}, hardware={"gpu": "H100"}), env=GPU_BOX)
        emb = match_name(name).embedding_params
        expected = (est.trainable_parameters - emb) * eight_bit + emb * thirty_two_bit
        assert est.breakdown["optimizer_states"] == pytest.approx(expected / 1024**3, abs=0.002)


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
    # No dataset: worst case, 4 x 1024 positions x 262144 vocab x (4 float32 copies on CUDA + fp16) = 18 GiB
    assert gemma.breakdown["logits"] == pytest.approx(18.0, rel=0.01)
    cpu = estimate(cfg(model={"base_model": "gemma-3-270m"}, training={"device": "cpu"}), env=Environment())
    assert cpu.breakdown["logits"] == pytest.approx(4 * 1024 * 262144 * (12 + (2 if cpu.dtype == "bfloat16" else 0)) / 1024**3, rel=0.01)
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


# ---------------------------------------------------------------- data-aware estimates

def _write_chat(path, rows):
    """`rows` are (question, answer) pairs."""
    return write_jsonl(path, [chat_row(q, a) for q, a in rows])


CHAT_ROWS = [("What is LoRA?", "LoRA adds low-rank adapters to a frozen model."),
             ("Explain QLoRA in one line, please, with some detail about memory.", "QLoRA loads the base in 4-bit NF4."),
             ("你好", "我是小星，一名友好的助手。请问有什么可以帮你？"),
             ("Say yes.", "The answer is yes."),
             ("A longer question about the learning rate for LoRA fine-tuning of small models?",
              "The learning rate for LoRA is often 2e-4. Fine-tuning teaches a model a style, a format or a persona.")]


def _trainer_view(tiny_model_dir, data, batch_rows, packing, max_len=1024):
    """What the real trainer computes for one micro-batch: (rows, width, kept columns), via sft_data and the loop's rule."""
    from transformers import AutoTokenizer

    from trainer.data.formats import load_examples
    from trainer.data.sft import IGNORE, SFTCollator, encode_dataset

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    encoded = encode_dataset(tok, load_examples(data), max_len).examples
    out = SFTCollator(tok.pad_token_id, packing=packing)([encoded[i] for i in batch_rows])
    labels = out["labels"]
    return labels.shape[0], labels.shape[1], int((labels != IGNORE).any(dim=0).sum())  # as trainer.training.loop.compute_loss


@pytest.mark.parametrize("packing", [True, False])
def test_batch_shape_matches_what_the_trainer_projects(tiny_model_dir, tmp_path, packing):
    # One micro-batch holding every example: the simulated shape must equal the collator's output and
    # the loop's logits_to_keep (union over rows of labelled columns) exactly.
    from trainer.planning.memory_data import batch_shape, profile_dataset

    data = _write_chat(tmp_path / "train.jsonl", CHAT_ROWS)
    profile = profile_dataset(str(data), "auto", str(tiny_model_dir), 1024)
    assert profile.method == "tokenizer" and profile.total_examples == len(CHAT_ROWS)
    shape = batch_shape(profile, len(CHAT_ROWS), packing, steps=1)
    rows, width, kept = _trainer_view(tiny_model_dir, data, range(len(CHAT_ROWS)), packing)
    assert (shape.rows, shape.width, shape.kept) == (rows, width, kept)
    # Batch 1 over an epoch: the largest single example (every example is drawn).
    single = batch_shape(profile, 1, packing, steps=3 * len(CHAT_ROWS))
    views = [_trainer_view(tiny_model_dir, data, [i], packing) for i in range(len(CHAT_ROWS))]
    assert single.width == max(v[1] for v in views) and single.kept == max(v[2] for v in views)


def test_estimate_reads_the_data_and_says_so(tiny_model_dir, tmp_path):
    data = _write_chat(tmp_path / "train.jsonl", CHAT_ROWS * 4)
    c = cfg(model={"base_model": str(tiny_model_dir)}, training={"device": "cpu", "batch_size": 4, "packing": True},
            dataset={"max_seq_length": 512})
    worst = estimate(c, env=Environment())
    # packing: one row of 4 x 512 tokens, all projected
    assert worst.shape == {"rows": 1, "width": 2048, "kept": 2048, "source": "worst-case"}
    assert any(n.startswith("worst case (no readable dataset.path)") for n in worst.notes)
    c.dataset.path = str(data)
    aware = estimate(c, env=Environment())
    assert aware.shape["source"] == "tokenizer" and any(n.startswith("from the data (all 20 examples") for n in aware.notes)
    # Four short examples packed into one row: far fewer tokens than 4 x 512, and only labelled ones kept.
    assert aware.shape["rows"] == 1 and aware.shape["kept"] < aware.shape["width"] < 4 * 512
    assert aware.breakdown["logits"] < worst.breakdown["logits"] / 4
    assert aware.breakdown["activations"] < worst.breakdown["activations"]
    assert aware.max_batch_size >= worst.max_batch_size


@pytest.fixture(scope="module")
def gemma_shapes_dir(tmp_path_factory):
    """Gemma-3-270M's config.json (no weights) with the tiny byte-level tokenizer, as in the H100 runs."""
    from tests.tiny_model import build_tokenizer

    folder = tmp_path_factory.mktemp("gemma-shapes")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"], "hidden_size": 640,
        "intermediate_size": 2048, "num_hidden_layers": 18, "num_attention_heads": 4, "num_key_value_heads": 1,
        "head_dim": 256, "vocab_size": 262144, "max_position_embeddings": 32768, "tie_word_embeddings": True}))
    build_tokenizer().save_pretrained(folder)
    return folder


def test_truncation_caps_each_example_at_max_seq_length(gemma_shapes_dir, tmp_path):
    data = _write_chat(tmp_path / "train.jsonl", [("Hi", "LoRA adds low-rank adapters. " * 40)] * 3)
    c = cfg(model={"base_model": str(gemma_shapes_dir)}, training={"device": "cpu", "batch_size": 2, "packing": False},
            dataset={"path": str(data), "max_seq_length": 64})
    est = estimate(c, env=Environment())
    assert est.shape == {"rows": 2, "width": 64, "kept": est.shape["kept"], "source": "tokenizer"}
    assert 40 < est.shape["kept"] < 64  # the prompt's columns carry no label
    # logits_to_keep selects the same columns in every row: rows x kept positions reach the vocabulary
    per_value = 4 * 3 + (2 if est.dtype == "bfloat16" else 0)
    assert est.breakdown["logits"] == pytest.approx(2 * est.shape["kept"] * 262144 * per_value / 1024**3, rel=0.01)


def test_chars_per_token_rule_without_a_local_tokenizer(tmp_path):
    # A model known only by name (no local folder): the rule stands in for its tokenizer.
    data = _write_chat(tmp_path / "train.jsonl", [("word " * 50, "answer " * 200)] * 8)
    c = cfg(model={"base_model": "Qwen2.5-0.5B"}, hardware={"gpu": "H100"},
            training={"batch_size": 2, "packing": True}, dataset={"path": str(data), "max_seq_length": 4096})
    est = estimate(c, env=GPU_BOX)
    assert est.shape["source"] == "chars-per-token" and any("characters-per-token" in n for n in est.notes)
    # 250 + 1400 characters a row at 4 characters a token: about 63 + 350 tokens (+ turn markers) per example.
    assert 2 * 400 < est.shape["width"] < 2 * 460
    assert 2 * 340 < est.shape["kept"] < 2 * 360


def test_unreadable_data_falls_back_to_the_worst_case(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n", encoding="utf-8")
    c = cfg(model={"base_model": str(tiny_model_dir)}, training={"device": "cpu", "batch_size": 2},
            dataset={"path": str(bad), "max_seq_length": 128})
    est = estimate(c, env=Environment())
    assert est.shape == {"rows": 2, "width": 128, "kept": 128, "source": "worst-case"}
    assert any("could not be read" in n for n in est.notes)


def test_profile_is_rebuilt_when_the_file_changes(tiny_model_dir, tmp_path):
    data = _write_chat(tmp_path / "train.jsonl", CHAT_ROWS[:2])
    c = cfg(model={"base_model": str(tiny_model_dir)}, training={"device": "cpu", "batch_size": 1},
            dataset={"path": str(data)})
    before = estimate(c, env=Environment()).shape
    import os

    _write_chat(data, CHAT_ROWS[:2] + [("Q", "LoRA adds low-rank adapters to a frozen model. " * 6)])
    os.utime(data, ns=(1, 1))  # a different mtime even on coarse clocks
    after = estimate(c, env=Environment()).shape
    assert after["width"] > before["width"] and after["kept"] > before["kept"]


H100_PEAKS_GB = {  # torch.cuda.max_memory_allocated / 1e9, bench/cuda_paths.py on an H100 80GB, 8 steps
    ("qlora", "paged_adamw_8bit", 4): 3.414, ("qlora", "adamw", 4): 4.092, ("lora", "adamw_8bit", 4): 3.677,
    ("lora", "adamw", 4): 4.019, ("full", "adamw_8bit", 2): 5.467, ("full", "adamw", 2): 7.132,
}


@pytest.mark.parametrize("method, opt, batch", list(H100_PEAKS_GB))
def test_agrees_with_the_trainer_measured_on_an_h100(gemma_shapes_dir, method, opt, batch):
    # The run: Gemma-3-270M shapes (random init), the tiny byte-level tokenizer, bench/cuda_paths.py's
    # 64 generated chat rows, packing, max_seq_length 512. The estimate's allocator figure must be within 15%.
    import importlib.util
    from pathlib import Path

    folder = gemma_shapes_dir
    spec = importlib.util.spec_from_file_location("cuda_paths", Path(__file__).resolve().parents[1] / "bench" / "cuda_paths.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = folder / "train.jsonl"
    bench.write_data(data)
    from trainer.planning.schema import TrainConfig

    c = TrainConfig()  # as bench/cuda_paths.py builds its configs: the defaults plus these fields
    c.model.base_model, c.method.type, c.optimizer.type = str(folder), method, opt
    c.dataset.path, c.dataset.max_seq_length = str(data), 512
    c.training.batch_size, c.training.max_steps, c.training.packing = batch, 8, True
    c.hardware.gpu = "H100"
    est = estimate(c, env=GPU_BOX)
    assert est.dtype == "bfloat16" and est.shape["source"] == "tokenizer"
    measured_gib = H100_PEAKS_GB[(method, opt, batch)] * 1e9 / 1024**3
    assert est.allocated_gb == pytest.approx(measured_gib, rel=0.15)
    assert est.total_gb > est.allocated_gb  # plus the CUDA context


def test_large_files_are_sampled_evenly(tiny_model_dir, tmp_path, monkeypatch):
    import trainer.planning.memory_data as memory_data

    monkeypatch.setattr(memory_data, "SAMPLE_EXAMPLES", 3)
    data = _write_chat(tmp_path / "train.jsonl", CHAT_ROWS * 2)
    profile = memory_data.profile_dataset(str(data), "auto", str(tiny_model_dir), 1024)
    assert len(profile.examples) == 3 and profile.total_examples == 10
    est = estimate(cfg(model={"base_model": str(tiny_model_dir)}, training={"device": "cpu", "batch_size": 2},
                       dataset={"path": str(data)}), env=Environment())
    assert any(n.startswith("from the data (3 of 10 examples") for n in est.notes)
