"""Version-pinned library docs: passages extracted from the installed transformers/peft/trl, and the
re-index when an installed version changes (real Chroma and BM25; the hashing embedder keeps it quick)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from knowledge import library_docs
from knowledge.chunking import chunk
from knowledge.loaders import load, walk


def real_default(cls, name):
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return repr(getattr(value, "value", value))


def section(text: str, title: str) -> str:
    """The Markdown under the level-1 heading `title`, up to the next one."""
    start = text.index(f"# {title}\n")
    end = text.find("\n# ", start + 1)
    return text[start:end if end > 0 else None]


def test_docstring_parameters_are_read():
    doc = """Config.

    Args:
        r (`int`):
            The rank.
            It sets the size.
        lora_alpha (`int`, *optional*, defaults to `8`):
            The alpha.

            A second paragraph.
        Note (see below): prose, not a parameter
    """
    found = library_docs.docstring_params(doc)
    assert found == {"r": "The rank.\nIt sets the size.", "lora_alpha": "The alpha.\n\nA second paragraph."}


def test_passages_come_from_the_installed_packages():
    import peft
    import transformers
    import trl

    docs = library_docs.ensure_current()
    assert docs.rebuilt and docs.skipped == []
    v = library_docs.installed_versions()
    assert v["peft"] == peft.__version__ and v["trl"] == trl.__version__ and v["transformers"] == transformers.__version__

    lora = (docs.folder / f"library/peft=={v['peft']}/LoraConfig.md").read_text(encoding="utf-8")
    alpha = section(lora, f"peft {v['peft']} LoraConfig.lora_alpha")
    assert f"defaults to `{real_default(peft.LoraConfig, 'lora_alpha')}`" in alpha and "(type `int`)" in alpha
    assert "alpha parameter" in alpha.lower()  # the docstring's description, not only the terse help
    targs = (docs.folder / f"library/transformers=={v['transformers']}/TrainingArguments.md").read_text(encoding="utf-8")
    lr = section(targs, f"transformers {v['transformers']} TrainingArguments.learning_rate")
    assert f"`{real_default(transformers.TrainingArguments, 'learning_rate')}`" in lr

    sft = (docs.folder / f"library/trl=={v['trl']}/SFTConfig.md").read_text(encoding="utf-8")
    # A field SFTConfig inherits unchanged is documented once, under TrainingArguments.
    same = [f.name for f in dataclasses.fields(trl.SFTConfig)
            if f.name == "output_dir" and real_default(trl.SFTConfig, f.name) == real_default(transformers.TrainingArguments, f.name)]
    for name in same:
        assert f"SFTConfig.{name}\n" not in sft
    assert f"# trl {v['trl']} SFTConfig.max_length\n" in sft
    assert f"# trl {v['trl']} DPOConfig.beta\n" in (docs.folder / f"library/trl=={v['trl']}/DPOConfig.md").read_text(encoding="utf-8")
    for name in ("KTOConfig", "ORPOConfig", "PeftConfig", "IA3Config", "PromptTuningConfig"):
        assert list(docs.folder.glob(f"library/*/{name}.md")), name


def test_one_chunk_per_parameter_with_the_versioned_heading():
    docs = library_docs.ensure_current()
    v = library_docs.installed_versions()["peft"]
    [path] = [p for p in walk(docs.folder) if p.name == "LoraConfig.md"]
    loaded = load(path)
    chunks = chunk(loaded)
    headings = [c.heading for c in chunks]
    assert f"peft {v} LoraConfig.lora_alpha" in headings and f"peft {v} LoraConfig.r" in headings
    assert all(h.startswith(f"peft {v} LoraConfig.") for h in headings)
    assert loaded.title == f"peft {v} LoraConfig" and "library" in loaded.tags and f"peft=={v}" in loaded.tags
    assert all(c.lang == "en" for c in chunks)


def test_missing_package_is_named_not_hidden(monkeypatch):
    versions = {**library_docs.installed_versions(), "trl": None}
    monkeypatch.setattr(library_docs, "installed_versions", lambda: versions)
    docs = library_docs.ensure_current()
    reasons = {s["path"]: s["reason"] for s in docs.skipped}
    assert reasons["library/trl/SFTConfig"] == "trl is not installed"
    assert not list(docs.folder.glob("library/trl==*"))


def test_folder_is_rebuilt_only_when_a_version_changes(monkeypatch):
    first = library_docs.ensure_current()
    assert first.rebuilt and not library_docs.ensure_current().rebuilt
    real = library_docs.installed_versions()
    monkeypatch.setattr(library_docs, "installed_versions", lambda: {**real, "peft": "0.0.1+test"})
    again = library_docs.ensure_current()
    assert again.rebuilt
    assert [p.parent.name for p in again.folder.glob("library/peft*/LoraConfig.md")] == ["peft==0.0.1+test"]
    assert json.loads((again.folder / library_docs.STAMP).read_text())["versions"]["peft"] == "0.0.1+test"


# ---------------------------------------------------------------- through the real index

@pytest.fixture
def hash_embeddings(monkeypatch):
    monkeypatch.setenv("TUNEPILOT_EMBEDDINGS", "hash")


def library_sources(collection: str) -> set[str]:
    from knowledge import store
    from knowledge.embeddings import get_embedder

    col = store.get_store().open(collection, get_embedder().name, create=False)
    return {s.source for s in store.file_states(col, library_docs.ROOT_ID).values()}


def test_version_change_replaces_only_the_library_passages(hash_embeddings, monkeypatch, tmp_path):
    from knowledge.ingest import ingest
    from knowledge.retrieval import search

    own = tmp_path / "docs"
    own.mkdir()
    (own / "notes.md").write_text("# Warmup\n\nThe zebra model needs a warmup ratio of 0.1.\n", encoding="utf-8")
    real = library_docs.installed_versions()
    first = ingest([own], collection="libs", progress=False, libraries=True)
    assert "notes.md" in first.added and f"library/peft=={real['peft']}/LoraConfig.md" in first.added
    hits = search("LoraConfig lora_alpha", k=3, collection="libs")
    assert hits[0].heading == f"peft {real['peft']} LoraConfig.lora_alpha"
    assert hits[0].source == f"library/peft=={real['peft']}/LoraConfig.md"

    monkeypatch.setattr(library_docs, "installed_versions", lambda: {**real, "peft": "0.0.1+test"})
    second = ingest([own], collection="libs", progress=False, libraries=True)
    assert second.unchanged and "notes.md" in second.unchanged  # the user's docs are untouched
    assert all(s.startswith("library/peft==0.0.1+test/") for s in second.added)
    assert f"library/peft=={real['peft']}/LoraConfig.md" in second.removed
    assert all(s.startswith(("library/transformers==", "library/trl==")) for s in second.unchanged if s != "notes.md")
    sources = library_sources("libs")
    assert not [s for s in sources if s.startswith(f"library/peft=={real['peft']}/")]
    assert "library/peft==0.0.1+test/LoraConfig.md" in sources
    hits = search("LoraConfig lora_alpha", k=3, collection="libs")
    assert hits[0].heading == "peft 0.0.1+test LoraConfig.lora_alpha"
    assert search("zebra warmup ratio", k=1, collection="libs")[0].source == "notes.md"


@pytest.mark.integration  # indexes the whole shipped corpus
def test_default_collection_indexes_and_renews_the_library_docs(hash_embeddings, monkeypatch):
    from knowledge import retrieval

    monkeypatch.setattr(retrieval, "REFRESH_SECONDS", 0.0)  # check the stamps on every search
    real = library_docs.installed_versions()
    hits = retrieval.search("per_device_train_batch_size TrainingArguments", k=5)
    assert f"transformers {real['transformers']} TrainingArguments.per_device_train_batch_size" in [h.heading for h in hits]
    shipped = {s for s in library_sources("default")}
    assert shipped and all(s.startswith("library/") for s in shipped)

    monkeypatch.setattr(library_docs, "installed_versions", lambda: {**real, "transformers": "9.9.9"})
    hits = retrieval.search("per_device_train_batch_size TrainingArguments", k=5)
    assert "transformers 9.9.9 TrainingArguments.per_device_train_batch_size" in [h.heading for h in hits]
    assert not [s for s in library_sources("default") if s.startswith(f"library/transformers=={real['transformers']}/")]
    # The shipped corpus is still there.
    assert any(h.source.startswith("en/") for h in retrieval.search("What is LoRA?", k=5))


def test_ingest_cli_libraries_without_paths(hash_embeddings):
    from tunepilot.cli.main import app

    out = CliRunner().invoke(app, ["ingest", "--libraries", "--collection", "libcli", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["counts"]["added"] >= 5 and all(s.startswith("library/") for s in data["added"])
    none = CliRunner().invoke(app, ["ingest", "--json"])
    assert none.exit_code == 2 and "--libraries" in none.stderr


def test_library_sources_are_recognisable():
    assert library_docs.is_library_source("library/peft==0.21.2/LoraConfig.md")
    assert not library_docs.is_library_source("en/lora.md")
    assert not library_docs.is_library_source("library/notes.md")  # a user's own folder named library
