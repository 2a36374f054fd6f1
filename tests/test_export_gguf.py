"""`tunepilot export --format gguf`: tensor mapping, refusals, the Ollama Modelfile, and (slow) a real round trip."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from trainer.training import export
from tunepilot.cli.main import app

runner = CliRunner()


def _tiny_gguf(tiny_model_dir, tmp_path, monkeypatch, dtype):
    """The tiny model written as GGUF without the Gemma vocabulary (its byte-level BPE is not Gemma's)."""
    monkeypatch.setattr(export, "_add_tokenizer", lambda writer, source: None)
    folder = _llama_cpp_compatible_copy(tiny_model_dir, tmp_path)
    config = export._gemma3_config(folder)
    path = tmp_path / f"tiny-{dtype}.gguf"
    count = export._write_gguf(folder, config, path, dtype)
    import gguf

    return count, gguf.GGUFReader(str(path))


def _llama_cpp_compatible_copy(tiny_model_dir, tmp_path):
    """The tiny model with llama.cpp's implied query scale (1/sqrt(head_dim)); its config has 256."""
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["query_pre_attn_scalar"] = config["head_dim"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("dtype", ["f16", "q8_0"])
def test_tensors_get_gguf_names_types_and_gemma_norm_shift(tiny_model_dir, tmp_path, monkeypatch, dtype):
    import gguf
    from safetensors.numpy import load_file

    count, reader = _tiny_gguf(tiny_model_dir, tmp_path, monkeypatch, dtype)
    tensors = {t.name: t for t in reader.tensors}
    assert count == len(tensors)
    assert "output.weight" not in tensors  # tied to the embedding, stored once
    assert {"token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight", "blk.1.ffn_down.weight",
            "blk.0.attn_q_norm.weight", "blk.0.post_attention_norm.weight", "blk.0.post_ffw_norm.weight"} <= set(tensors)
    want = gguf.GGMLQuantizationType.F16 if dtype == "f16" else gguf.GGMLQuantizationType.Q8_0
    assert tensors["blk.0.attn_q.weight"].tensor_type == want
    assert tensors["output_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    source = load_file(str(tmp_path / "tiny" / "model.safetensors"))
    # Gemma scales by (1 + w); llama.cpp by w: the file holds w + 1.
    np.testing.assert_allclose(np.asarray(tensors["output_norm.weight"].data), source["model.norm.weight"] + 1, rtol=1e-6)
    assert reader.fields["general.architecture"].contents() == "gemma3"
    assert reader.fields["gemma3.block_count"].contents() == 2
    assert reader.fields["gemma3.attention.key_length"].contents() == 16


def test_unknown_architecture_is_one_line_listing_the_supported(tmp_path):
    folder = tmp_path / "llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    result = runner.invoke(app, ["export", str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "does not know the 'llama' architecture; supported: gemma3_text" in result.output
    assert "Traceback" not in result.output


def test_settings_gguf_cannot_carry_are_refused_by_name(tiny_model_dir, tmp_path):
    with pytest.raises(export.ExportError, match="query_pre_attn_scalar=256"):
        export._gemma3_config(tiny_model_dir)  # head_dim 16: llama.cpp would scale queries differently
    folder = _llama_cpp_compatible_copy(tiny_model_dir, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["final_logit_softcapping"] = 30.0
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(export.ExportError, match="final_logit_softcapping=30.0"):
        export._gemma3_config(folder)


def test_existing_folder_bad_dtype_and_format_are_refused(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(export.ExportError, match="--overwrite"):
        export.export_gguf(str(tiny_model_dir), out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(export.ExportError, match="f16, bf16, q8_0"):
        export.export_gguf(str(tiny_model_dir), tmp_path / "new", dtype="q4")
    result = runner.invoke(app, ["export", str(tiny_model_dir), "--format", "onnx", "--out", str(tmp_path / "x"), "--json"])
    assert result.exit_code == 2 and "supported format is gguf" in result.output


@pytest.mark.integration  # assembles the packaged GGUF (its vocabulary is the reference)
def test_non_gemma_vocabulary_is_refused(tiny_model_dir, tmp_path):
    """The tiny model's byte-level BPE is not Gemma's vocabulary: writing it with Gemma's would be wrong."""
    out = tmp_path / "out"
    with pytest.raises(export.ExportError, match="tokenizer is not Gemma 3's"):
        export.export_gguf(str(_llama_cpp_compatible_copy(tiny_model_dir, tmp_path)), out)
    assert not out.exists()
    assert not list(tmp_path.glob(".export-*"))  # scratch cleaned up


def test_modelfile_has_the_trained_turn_format_and_stops(tiny_model_dir):
    from trainer.models.chat_format import render_prompt
    from trainer.models.generation import load_tokenizer

    text = export.ollama_modelfile(tiny_model_dir)
    assert text.startswith("FROM ./model.gguf\n")
    assert 'PARAMETER stop "<end_of_turn>"' in text and 'PARAMETER stop "<eos>"' in text
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    assert "{{-" not in template  # trimming would eat the newlines of the turn format
    # What the training template renders, piece by piece, appears in the Go template in that order.
    rendered = render_prompt(load_tokenizer(tiny_model_dir), [
        {"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}])
    assert rendered.endswith("<start_of_turn>user\nS\n\nU1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
                             "<start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n")
    order = [template.index(piece) for piece in ("<start_of_turn>user\n", "{{ $system }}\n\n", "{{ $m.Content }}<end_of_turn>\n")]
    assert order == sorted(order)
    assert template.index("<start_of_turn>model\n{{ $m.Content }}<end_of_turn>\n") > 0
    assert template.endswith("{{ end }}<start_of_turn>model\n")


def test_an_adapter_exports_through_its_merged_folder(tiny_model_dir, tmp_path, monkeypatch):
    from trainer.models import registry

    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    shutil.copytree(tiny_model_dir, run / "merged")
    monkeypatch.setattr(registry, "resolve", lambda name: registry.ResolvedModel(
        name=name, base_path=tiny_model_dir, adapter_path=run / "adapter", kind="finetuned"))
    assert export._full_model_folder("ft:tiny:x:1", tmp_path / "scratch") == run / "merged"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(1500)  # writes and re-reads 540 MB; minutes on a loaded 2-core machine
def test_default_model_round_trips_through_gguf_within_bf16_rounding(with_default_model, tmp_path):
    out = tmp_path / "gguf"
    result = runner.invoke(app, ["export", "gemma-3-270m", "--dtype", "bf16", "--out", str(out), "--ollama", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tensors"] == 236 and (out / "model.gguf").stat().st_size == report["size_bytes"]
    assert (out / "Modelfile").exists() and json.loads((out / "export_info.json").read_text())["dtype"] == "bf16"
    # A wrong name, a missing norm shift or a transposed weight moves logits by whole units or more.
    assert report["max_logit_diff"] <= 1.5 * report["bf16_rounding_logit_diff"] + 1e-3, report


@pytest.mark.integration
def test_models_page_offers_export_and_shows_a_refusal_in_one_line(tiny_model_dir, tmp_path):
    from tests.test_ui_pages import open_page, start_app, texts, wait_for
    from trainer.models import registry

    registry.register_local("tiny", tiny_model_dir)
    at = open_page(start_app("en"), "models")
    at.selectbox(key="models.export_model").set_value("tiny").run()
    at.selectbox(key="models.export_dtype").set_value("q8_0").run()
    out = next(w for w in at.text_input if w.key.startswith("models.export_out"))
    assert out.value.endswith("tiny-q8_0")
    out.set_value(str(tmp_path / "tiny-gguf")).run()
    at.button(key="models.export_start").click().run()
    wait_for(at, lambda a: a.error)
    message = texts(at.error)[-1]
    assert "query_pre_attn_scalar" in message and "Traceback" not in message and "\n" not in message
    assert not (tmp_path / "tiny-gguf").exists()
