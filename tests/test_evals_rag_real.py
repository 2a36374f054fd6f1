"""`eval rag` and the library-doc citations through the real index: Chroma + MiniLM + BM25 over a slice of the
shipped corpus plus the installed libraries' parameter docs, answered by the real assistant."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from typer.testing import CliRunner

from tests.support import write_jsonl

pytestmark = pytest.mark.integration

COLLECTION = "ragreal"


@pytest.fixture(scope="module")
def real_home(tmp_path_factory):
    from knowledge import docs_path
    from knowledge.ingest import ingest

    home = tmp_path_factory.mktemp("rag-real-home")
    corpus = tmp_path_factory.mktemp("rag-corpus")
    for rel in ("en/lora.md", "zh/lora.md", "en/troubleshooting.md"):
        (corpus / rel).parent.mkdir(exist_ok=True)
        shutil.copy(docs_path() / rel, corpus / rel)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEPILOT_HOME", str(home))
        ingest([corpus], collection=COLLECTION, progress=False, libraries=True)
    return home


@pytest.fixture
def real_index(real_home, monkeypatch):
    monkeypatch.setenv("TUNEPILOT_HOME", str(real_home))
    return real_home


def lora_alpha_default() -> str:
    import peft

    return repr({f.name: f for f in dataclasses.fields(peft.LoraConfig)}["lora_alpha"].default)


def test_a_parameter_answer_cites_the_versioned_library_passage(real_index):
    import peft

    from assistant.answer import answer

    result = answer("What is the default lora_alpha in peft LoraConfig?", collection=COLLECTION)
    assert result.grounded, result.answer
    headings = [c.heading for c in result.citations]
    assert f"peft {peft.__version__} LoraConfig.lora_alpha" in headings, (headings, result.answer)
    assert lora_alpha_default() in result.answer
    cite = next(c for c in result.citations if c.heading.endswith("LoraConfig.lora_alpha"))
    assert cite.source == f"library/peft=={peft.__version__}/LoraConfig.md"


def test_rag_eval_through_the_real_index(real_index, tmp_path):
    from tunepilot.cli.main import app

    questions = write_jsonl(tmp_path / "questions.jsonl", [
        {"id": "lr", "question": "What learning rate should I use for LoRA?", "expected_source": "en/lora.md",
         "expected_fact": "2e-?4"},
        {"id": "alpha", "question": "What is the default lora_alpha in peft LoraConfig?",
         "expected_source": "library/peft==*/LoraConfig.md", "expected_fact": f"defaults to `?{lora_alpha_default()}\\b"},
        {"id": "oom", "question": "How do I fix CUDA out of memory during training?", "expected_source": "en/troubleshooting.md"},
        {"id": "rice", "question": "How do I cook rice?", "should_decline": True},
    ])
    out = CliRunner().invoke(app, ["eval", "rag", "--questions", str(questions), "--collection", COLLECTION, "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    rows = {r["id"]: r for r in result["rows"]}
    assert all(rows[i]["hit"] for i in ("lr", "alpha", "oom")), {i: rows[i]["top_sources"] for i in rows}
    assert rows["lr"]["answer_contains_fact"] and rows["lr"]["citation_support"], rows["lr"]["answer"]
    assert rows["alpha"]["citation_support"], rows["alpha"]
    assert rows["rice"]["declined"] and result["metrics"]["decline_recall"] == 1.0
    assert result["metrics"]["hit_at_k"] == 1.0 and result["collection"] == COLLECTION
    from evals.rag import latest_result

    assert latest_result()["metrics"] == result["metrics"]
