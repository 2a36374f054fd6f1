"""Streamlit AppTest: thumbs and corrections under chat answers, and the Knowledge page's feedback and
RAG-eval tabs, through the real library parts (the chat searches a real index, built with the hashing
embedder so the module stays quick; the answers' content is not what these tests check)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from assistant import feedback
from evals import rag
from tunepilot.ui.widgets.i18n import catalog

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parent.parent / "tunepilot" / "ui" / "app.py"
RUN_TIMEOUT = 300


def start_app(lang: str = "en") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    at.context["locale"] = "zh-CN" if lang == "zh" else "en-US"
    at.run()
    assert not at.exception, at.exception
    return at


def open_knowledge(at: AppTest) -> AppTest:
    at.switch_page("pages/knowledge.py").run()
    assert not at.exception, at.exception
    return at


def frames(at: AppTest) -> list:
    return [df.value for df in at.dataframe]


@pytest.fixture(scope="module")
def hash_home(tmp_path_factory):
    from knowledge.retrieval import warm_up

    home = tmp_path_factory.mktemp("feedback-ui-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEPILOT_HOME", str(home))
        patch.setenv("TUNEPILOT_EMBEDDINGS", "hash")
        warm_up("default")
    return home


@pytest.fixture
def indexed(hash_home, monkeypatch, tmp_path):
    monkeypatch.setenv("TUNEPILOT_EMBEDDINGS", "hash")
    # A copy per test, so one test's feedback is not the next one's.
    import shutil

    home = tmp_path / "home"
    shutil.copytree(hash_home, home)
    monkeypatch.setenv("TUNEPILOT_HOME", str(home))
    return home


def test_thumbs_and_a_correction_are_stored_and_listed(indexed):
    at = start_app("en")
    at.chat_input[0].set_value("How do I cook rice?").run()
    assert not at.exception, at.exception
    reply = at.session_state["chat.messages"][1]
    if not reply["feedback"]["grounded"]:
        # A declined answer is kept at once, before anyone rates it.
        [entry] = feedback.list_entries()
        assert entry["question"] == "How do I cook rice?" and entry["rating"] is None and not entry["grounded"]
    at.button(key="fb1.up").click().run()
    assert not at.exception, at.exception
    [entry] = feedback.list_entries()
    assert entry["rating"] == "up" and entry["grounded"] == reply["feedback"]["grounded"]
    assert catalog("en")["chat.feedback_saved"] in [c.value for c in at.caption]

    at.chat_input[0].set_value("What learning rate should I use for LoRA?").run()
    at.button(key="fb3.down").click().run()
    at.text_input(key="fb3.correction").input("2e-4").run()
    at.button(key="fb3.save").click().run()
    assert not at.exception, at.exception
    second = feedback.list_entries()[-1]
    assert second["question"] == "What learning rate should I use for LoRA?"
    assert second["rating"] == "down" and second["correction"] == "2e-4"
    assert second["citations"] == [{"n": c["n"], "source": c["source"], "heading": c["heading"]}
                                   for c in at.session_state["chat.messages"][3]["citations"]]

    # A second click on the same thumb takes the rating back.
    at.button(key="fb1.up").click().run()
    assert feedback.list_entries()[0]["rating"] is None

    open_knowledge(at)
    questions = [q for df in frames(at) if "question" in df.columns for q in df["question"].tolist()]
    assert "What learning rate should I use for LoRA?" in questions
    assert any(b.label.startswith("Download as RAG eval set") for b in at.get("download_button"))


def test_knowledge_page_lists_declined_questions_and_the_last_rag_eval(tmp_path):
    feedback.record("How much VRAM at 1024 px?", {"answer": "not covered", "grounded": False, "citations": []})
    feedback.record("What is LoRA?", {"answer": "LoRA trains adapters [1].", "grounded": True,
                                      "citations": [{"n": 1, "source": "en/lora.md", "heading": "How LoRA works"}]},
                    rating="up")
    qs = rag.parse_questions([{"question": "What is LoRA?", "expected_source": "en/lora.md"},
                              {"question": "Rice?", "should_decline": True}], ["question", "expected_source", "should_decline"])
    replies = {"What is LoRA?": {"answer": "LoRA [1].", "grounded": True, "citations": []},
               "Rice?": {"answer": "not covered", "grounded": False, "citations": []}}
    rag.save_result(rag.evaluate(qs, lambda q, k: [{"source": "en/x.md"}, {"source": "en/lora.md"}],
                                 lambda q: replies[q], k=5, collection="default"))

    at = open_knowledge(start_app("en"))
    strings = catalog("en")
    assert strings["knowledge.declined_title"] in [s.value for s in at.subheader]
    declined = next(df for df in frames(at) if "How much VRAM at 1024 px?" in df.get("question", []).tolist())
    assert "What is LoRA?" not in declined["question"].tolist()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Hit@5"] == "1.00" and metrics["MRR"] == "0.50" and metrics["Decline recall"] == "1.00"
    assert metrics["Answer states the fact"] == "—"  # no question named a fact
    assert metrics[strings["knowledge.fb_declined"]] == "1"
    rows = next(df for df in frames(at) if "rank" in df.columns)
    assert rows["rank"].tolist()[0] == 2


def test_rag_eval_from_the_knowledge_page(indexed, tmp_path):
    at = open_knowledge(start_app("zh"))
    assert catalog("zh")["knowledge.rag_none"] in [i.value for i in at.info]
    questions = ('{"question": "What learning rate should I use for LoRA?", "expected_source": "en/lora.md"}\n'
                 '{"question": "今天茅台的股价是多少？", "should_decline": true}\n').encode()
    at.file_uploader(key="knowledge.rag_upload").set_value(("q.jsonl", questions, "application/jsonl")).run()
    at.button(key="knowledge.rag_run").click().run()
    import time

    deadline = time.monotonic() + 300
    while rag.latest_result() is None or not at.metric:
        assert time.monotonic() < deadline and not at.error, [e.value for e in at.error]
        time.sleep(1.0)
        at.run()
    result = rag.latest_result()
    assert result["counts"]["questions"] == 2 and result["collection"] == "default"
    labels = [m.label for m in at.metric]
    assert "命中率@5" in labels
