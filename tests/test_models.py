"""Model registry, the default model's provisioning, and `tunepilot chat-model` on the tiny model."""

from __future__ import annotations

import json
import logging
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


@pytest.mark.integration
def test_chat_model_generates_with_template_and_stops(tiny_model_dir):
    generation.clear_cache()
    result = runner.invoke(app, ["chat-model", str(tiny_model_dir), "--prompt", "LoRA is", "--max-new-tokens", "8", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model"] == str(tiny_model_dir)
    assert isinstance(data["reply"], str)
    loaded = generation.load(str(tiny_model_dir))
    assert loaded.tokenizer.convert_tokens_to_ids("<end_of_turn>") in loaded.stop_ids


@pytest.mark.integration
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


@pytest.mark.integration
@pytest.mark.slow
def test_default_model_provisions_and_generates(with_default_model, tmp_path, caplog, capfd):
    path = models.ensure_default_model(progress=False)
    assert (path / "model.safetensors").exists()
    capfd.readouterr()
    with caplog.at_level(logging.WARNING):
        loaded = generation.load("gemma-3-270m")
        loaded.tokenizer.save_pretrained(tmp_path / "saved")  # tokenizers warns about holes on save
    assert loaded.tokenizer.chat_template
    # Neither the false "incorrect regex pattern" alarm nor a vocabulary hole (issue 17).
    said = caplog.text + "".join(capfd.readouterr())
    assert "fix_mistral_regex" not in said and "holes" not in said, said
    vocab = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    ids = set(vocab["model"]["vocab"].values()) | {t["id"] for t in vocab["added_tokens"]}
    assert ids == set(range(max(ids) + 1))
    corpus = ["LoRA rank 16, alpha 32, lr 2e-4.", "学习率设为 2e-4，训练 3 轮。显存 24G 够吗？",
              "def f(x):\n\treturn x ** 2  # tab\n\t\tpass", "混合 English 与中文\t\ttabs   spaces", "emoji 🤖 ü ñ ß"]
    for text in corpus:
        assert loaded.tokenizer.decode(loaded.tokenizer.encode(text, add_special_tokens=False)) == text
    tab = loaded.tokenizer.encode("\t", add_special_tokens=False)
    assert tab == [loaded.tokenizer.convert_tokens_to_ids("\t")] and tab != [loaded.tokenizer.convert_tokens_to_ids("<0x09>")]
    reply = generation.generate(loaded, [generation.build_messages("LoRA is")], max_new_tokens=5)[0]
    assert isinstance(reply, str)


def test_rebuilt_vocabulary_keeps_byte_pieces_and_has_no_holes(tmp_path):
    """The GGUF converter names byte piece <0x09> as a literal tab, colliding with Gemma's own tab piece."""
    from tokenizers import Tokenizer
    from tokenizers import models as tk_models

    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "\t", "a", "b", "ab", "\t"]  # id 4 is really <0x09>
    path = tmp_path / "tokenizer.json"
    Tokenizer(tk_models.Unigram([(p, -float(i)) for i, p in enumerate(pieces)], unk_id=3, byte_fallback=True)).save(str(path))
    with pytest.raises(ValueError, match="two ids"):
        models.rewrite_tokenizer_as_bpe(path)

    models.rewrite_tokenizer_as_bpe(path, byte_tokens={4: "<0x09>"})
    vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    assert vocab["<0x09>"] == 4 and vocab["\t"] == 8
    assert sorted(vocab.values()) == list(range(len(pieces)))
    assert Tokenizer.from_file(str(path)).encode("ab\t").ids == [7, 8]


def test_tokenizer_load_silences_the_false_mistral_alarm_only_for_other_models(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gemma3_text"}')
    assert generation._mistral_regex_kwargs(tmp_path) == {"fix_mistral_regex": False}
    (tmp_path / "config.json").write_text('{"model_type": "mistral"}')
    assert generation._mistral_regex_kwargs(tmp_path) == {}
    assert generation._mistral_regex_kwargs(tmp_path / "adapter-without-config") == {}


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


# ---------------------------------------------------------------- device/dtype policy (trainer.models.device)


def _probe(monkeypatch, cuda: bool, bf16: bool = False, mps: bool = False, memory_gib: int = 80):
    """What `Environment.detect()` sees with torch's answers replaced."""
    import types

    import torch

    from trainer.models import device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: types.SimpleNamespace(total_memory=memory_gib * 1024**3))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    return device._detect.__wrapped__()  # the probe itself, not this machine's cached answer


def test_device_policy_picks_device_and_dtype_per_machine(monkeypatch):
    import torch

    from trainer.models import device

    gpu = _probe(monkeypatch, cuda=True, bf16=True)
    assert (gpu.has_cuda, gpu.cuda_bf16, gpu.cuda_memory_gb) == (True, True, 80.0)
    assert device.pick_device("auto", gpu) == "cuda" and device.dtype_name("cuda", "auto", gpu) == "bfloat16"
    assert device.memory_gb("cuda", gpu) == 80.0
    t4 = _probe(monkeypatch, cuda=True, bf16=False, memory_gib=16)
    assert device.dtype_name("cuda", "auto", t4) == "float16"
    mac = _probe(monkeypatch, cuda=False, mps=True)
    assert device.pick_device("auto", mac) == "mps" and device.dtype_name("mps", "auto", mac) == "float32"
    laptop = _probe(monkeypatch, cuda=False)
    assert device.pick_device("auto", laptop) == "cpu" and device.pick_device("cuda", laptop) == "cuda"
    assert "no CUDA GPU" in laptop.description
    # Planning a CUDA run on a machine without one (no GPU named): assume a recent, bf16-capable GPU.
    assert device.dtype_name("cuda", "auto", laptop) == "bfloat16"
    assert device.dtype_name("cpu", "float16", laptop) == "float16"  # an explicit dtype is kept

    # On the CPU, bf16 only where the CPU has bf16 units: AVX2-only CPUs emulate it (~300x slower).
    monkeypatch.setattr(device, "_cpu_flags", lambda: "flags\t: fpu sse2 avx2 fma")
    assert device.cpu_has_fast_bf16.__wrapped__() is False
    monkeypatch.setattr(device, "_cpu_flags", lambda: "flags\t: fpu avx2 avx512f avx512_bf16 amx_tile")
    assert device.cpu_has_fast_bf16.__wrapped__() is True
    monkeypatch.setattr(device, "_cpu_flags", lambda: "")  # no /proc/cpuinfo (not Linux)
    assert device.cpu_has_fast_bf16.__wrapped__() is False

    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)
    assert device.pick_dtype("cpu") == torch.bfloat16
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    assert device.pick_dtype("cpu") == torch.float32


def test_training_precision_follows_the_device_policy(monkeypatch):
    import torch

    from trainer.models import device
    from trainer.models.device import Precision, training_precision

    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)
    # Adapters over a bf16 base; full fine-tuning keeps float32 master weights and autocasts.
    assert training_precision("lora", "cpu") == Precision(torch.bfloat16, None)
    assert training_precision("full", "cpu") == Precision(torch.float32, "bf16")
    assert training_precision("lora", "cpu", "float16") == Precision(torch.float32, None)  # no fp16 on CPU
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    assert training_precision("lora", "cpu") == Precision(torch.float32, None)
    assert training_precision("freeze", "cpu") == Precision(torch.float32, None)
    t4 = device.Environment(has_cuda=True, cuda_bf16=False, cuda_memory_gb=16.0)
    monkeypatch.setattr(device, "_detect", lambda: t4)
    assert training_precision("full", "cuda") == Precision(torch.float32, "fp16")
    assert training_precision("qlora", "cuda") == Precision(torch.float16, None)


def test_planner_sizes_with_the_same_policy(monkeypatch):
    from trainer.models import device
    from trainer.planning.config_io import parse_config
    from trainer.planning.memory import compute_dtype, device_memory_gb, target_device

    laptop = device.Environment()
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    cfg = parse_config({"model": {"base_model": "gemma-3-270m"}})
    assert target_device(cfg, laptop) == "cpu" and compute_dtype(cfg, "cpu", laptop) == "float32"
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)
    assert compute_dtype(cfg, "cpu", laptop) == "bfloat16"
    rented = parse_config({"model": {"base_model": "gemma-3-270m"}, "hardware": {"gpu": "T4"}})
    assert target_device(rented, laptop) == "cuda"
    assert compute_dtype(rented, "cuda", laptop) == "float16"  # the T4 has no bf16
    assert device_memory_gb(rented, "cuda", laptop) == 16.0


@pytest.mark.integration
def test_concurrent_generate_calls_share_one_tokenizer(tiny_model_dir):
    """The UI's eval thread (generations, perplexity) and its chat use one loaded model at once. A fast
    tokenizer panics ("Already borrowed") when one thread changes its padding settings while another
    encodes; the unlocked version of this (padding_side flipped outside the lock, perplexity's
    unpadded calls beside it) failed within a few calls."""
    import threading

    from trainer.models.chat_format import render_prompt

    generation.clear_cache()
    loaded = generation.load(str(tiny_model_dir))
    failures: list[BaseException] = []
    replies: list[str] = []

    def chat(k: int) -> None:
        try:
            for i in range(6):
                convs = [generation.build_messages("LoRA adapters " * (100 + 37 * j + k)) for j in range(1 + (i + k) % 4)]
                replies.extend(generation.generate(loaded, convs, max_new_tokens=1))
        except BaseException as exc:  # collected and asserted below, so a panic in a thread fails the test
            failures.append(exc)

    def perplexity_tokens() -> None:
        try:
            for i in range(150):
                text = render_prompt(loaded.tokenizer, generation.build_messages("LoRA " * (50 + i % 40)))
                generation.token_ids(loaded.tokenizer, text, add_special_tokens=False)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=chat, args=(k,)) for k in range(2)] + [threading.Thread(target=perplexity_tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert len(replies) == sum(1 + (i + k) % 4 for k in range(2) for i in range(6))
    assert all(isinstance(r, str) for r in replies)
