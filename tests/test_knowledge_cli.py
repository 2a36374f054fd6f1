"""`tunepilot ingest` / `tunepilot search`: exact JSON shapes and exit codes (hashing embedder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunepilot.cli.main import app

FIXTURES = Path(__file__).parent / "fixtures" / "knowledge"
HIT_KEYS = {"rank", "score", "source", "heading", "text", "lang"}


@pytest.fixture(autouse=True)
def hash_embedder(monkeypatch):
    monkeypatch.setenv("TUNEPILOT_EMBEDDINGS", "hash")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    shutil.copytree(FIXTURES, root)
    return root


def _json(result) -> dict:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_ingest_and_search_json(runner, corpus):
    data = _json(runner.invoke(app, ["ingest", str(corpus), "--collection", "docs", "--json"]))
    assert data["collection"] == "docs" and data["counts"]["added"] == 6 and data["chunks"] > 0
    assert data["skipped"] == [] and isinstance(data["seconds"], float)

    again = _json(runner.invoke(app, ["ingest", str(corpus), "--collection", "docs", "--json"]))
    assert again["chunks"] == 0 and again["counts"]["unchanged"] == 6

    out = _json(runner.invoke(app, ["search", "gradient checkpointing", "-k", "2", "--collection", "docs", "--json"]))
    assert list(out) == ["hits"] and len(out["hits"]) == 2
    assert all(set(h) == HIT_KEYS for h in out["hits"])
    assert out["hits"][0]["source"] == "en/memory.md" and out["hits"][0]["rank"] == 1

    human = runner.invoke(app, ["search", "lora_alpha", "--collection", "docs"])
    assert human.exit_code == 0 and "en/lora.md" in human.stdout


def test_queries_file(runner, corpus, tmp_path):
    runner.invoke(app, ["ingest", str(corpus), "-c", "docs"])
    queries = tmp_path / "q.txt"
    queries.write_bytes("lora_alpha rank\n\n梯度检查点\n".encode("gbk"))  # encodings are detected here too
    out = _json(runner.invoke(app, ["search", "--queries-file", str(queries), "-k", "3", "-c", "docs", "--json"]))
    assert list(out) == ["results"]
    assert [r["query"] for r in out["results"]] == ["lora_alpha rank", "梯度检查点"]
    assert all(set(r) == {"query", "hits"} and len(r["hits"]) == 3 for r in out["results"])
    assert out["results"][1]["hits"][0]["source"] == "zh/memory.md"


def test_strict_exits_1_on_skips_and_prints_the_summary(runner, corpus):
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 truncated")
    result = runner.invoke(app, ["ingest", str(corpus), "-c", "docs", "--strict", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["skipped"][0]["path"] == "broken.pdf" and "broken PDF" in data["skipped"][0]["reason"]
    assert data["counts"]["added"] == 6  # the good files are indexed anyway

    lenient = runner.invoke(app, ["ingest", str(corpus), "-c", "docs"])
    assert lenient.exit_code == 0 and "skipped broken.pdf" in lenient.stdout


def test_user_errors_exit_2(runner, tmp_path):
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    unknown = runner.invoke(app, ["search", "x", "--collection", "never"])
    assert unknown.exit_code == 2 and "tunepilot ingest" in unknown.stderr
    neither = runner.invoke(app, ["search"])
    assert neither.exit_code == 2
    bad_url = runner.invoke(app, ["search", "x", "--chroma-url", "http://127.0.0.1:9"])
    assert bad_url.exit_code == 2 and "Chroma server" in bad_url.stderr
    bad_name = runner.invoke(app, ["ingest", str(tmp_path), "-c", "no spaces"])
    assert bad_name.exit_code == 2 and "invalid collection" in bad_name.stderr
