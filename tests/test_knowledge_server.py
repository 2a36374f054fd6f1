"""Client-server mode: a real `chroma run` server on loopback, shared by two workspaces."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support import free_port
from tunepilot.cli.main import app

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures" / "knowledge"


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    chroma = Path(sys.executable).parent / "chroma"
    if not chroma.exists():
        pytest.skip("the chroma CLI is not installed next to this python")
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = open(data / "server.log", "wb")
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"chroma server did not start: {(data / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_ingest_and_search_through_a_chroma_server(chroma_server, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEPILOT_EMBEDDINGS", "hash")
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURES, corpus)
    runner = CliRunner()

    result = runner.invoke(app, ["ingest", str(corpus), "-c", "team", "--chroma-url", chroma_server, "--json"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["added"] == 6 and summary["store"] == chroma_server

    out = runner.invoke(app, ["search", "梯度检查点", "-c", "team", "--chroma-url", chroma_server, "--json"])
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["hits"][0]["source"] == "zh/memory.md"
    # nothing went into the local embedded store
    from knowledge.embeddings import get_embedder
    from knowledge.store import Store

    assert Store().open("team", get_embedder().name, create=False) is None

    # A teammate: another workspace (no local BM25 snapshot), the server from the environment.
    monkeypatch.setenv("TUNEPILOT_HOME", str(tmp_path / "teammate"))
    monkeypatch.setenv("TUNEPILOT_CHROMA_URL", chroma_server)
    from knowledge.ingest import ingest
    from knowledge.retrieval import search

    hits = search("lora_alpha", k=2, collection="team")
    assert hits[0].source == "en/lora.md"
    again = ingest([corpus], collection="team", progress=False)
    assert again.chunks == 0 and len(again.unchanged) == 6
    (corpus / "en" / "datasets.md").unlink()
    assert ingest([corpus], collection="team", progress=False).removed == ["en/datasets.md"]
    time.sleep(1.1)
    assert all(h.source != "en/datasets.md" for h in search("deduplication validation split", k=5, collection="team"))
