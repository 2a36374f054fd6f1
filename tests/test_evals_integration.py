"""Evals through the other real parts: an `ft:` adapter on its base (no merge), and `tunepilot serve` as an openai: endpoint."""

from __future__ import annotations

import json

import pytest

from evals.compare import compare
from evals.runner import run_eval
from evals.spec import build_spec

pytestmark = pytest.mark.integration

ROWS = "question,answer\nWhat is LoRA?,adapters\n你好,你好\nThe answer is,yes\n"


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(ROWS, encoding="utf-8")
    return path


def test_base_vs_finetuned_adapter_without_merging(tmp_path, tiny_model_dir, dataset):
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.models import generation
    from trainer.models import registry as models

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    # Non-zero B matrices, so the adapter really changes the replies.
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"],
                                                 init_lora_weights=False))
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)
    ft_id = "ft:tiny:unit:ftjob-1"
    models.register_finetuned(ft_id, base_model=str(tiny_model_dir), adapter_path=adapter_dir)

    out = tmp_path / "run"
    summary = run_eval(build_spec(dataset=str(dataset), models=[str(tiny_model_dir), ft_id], out=str(out),
                                  max_new_tokens=8, scorers=["exact", "chrf", "perplexity"]), progress=False)
    assert summary["models"][ft_id]["errors"] == 0
    assert isinstance(generation.load(ft_id).model, PeftModel)  # adapter on its base, not merged
    records = [json.loads(x) for x in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    by_model = {m: [r for r in records if r["model"] == m] for m in (str(tiny_model_dir), ft_id)}
    assert [r["output"] for r in by_model[str(tiny_model_dir)]] != [r["output"] for r in by_model[ft_id]]
    # Perplexity goes through the adapter too.
    assert summary["models"][ft_id]["scores"]["perplexity"] != summary["models"][str(tiny_model_dir)]["scores"]["perplexity"]

    result = compare(out)
    assert result["a"]["model"] == str(tiny_model_dir) and result["b"]["model"] == ft_id
    assert result["paired_rows"] == 3
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f"{ft_id} vs {tiny_model_dir}" in html


def test_openai_provider_against_tunepilot_serve(tmp_path, tiny_model_dir, dataset):
    from trainer.models import registry as models
    from trainer.server import create_app
    from trainer.server.background import BackgroundServer

    models.register_local("tiny", tiny_model_dir)
    with BackgroundServer(create_app()) as server:
        spec = build_spec(dataset=str(dataset), out=str(tmp_path / "run"), max_new_tokens=6, batch_size=1,
                          models=["tiny", {"id": "openai:tiny", "base_url": server.base_url, "label": "served"}],
                          scorers=["exact", "latency"])
        summary = run_eval(spec, progress=False)
    assert summary["models"]["served"]["errors"] == 0
    records = [json.loads(x) for x in (tmp_path / "run" / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    local = {r["row"]: r["output"] for r in records if r["model"] == "tiny"}
    served = {r["row"]: r["output"] for r in records if r["model"] == "served"}
    assert served == local  # same model, greedy, one row at a time: the same replies in-process and over HTTP
