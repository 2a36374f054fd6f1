"""Streamlit AppTest for every page of the app, through the real library parts (tiny model, real index).

Each test drives the app the way a person would: it runs the entry point (`tunepilot/ui/app.py`),
switches pages, types into widgets and clicks, then reads what the page shows.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support import chat_rows, write_jsonl
from tunepilot.ui.widgets.i18n import catalog

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parent.parent / "tunepilot" / "ui" / "app.py"
PAGES = ["chat", "jobs", "models", "evals", "knowledge"]
# First runs import torch, transformers and the index; the shared test machine is slow.
RUN_TIMEOUT = 240


def start_app(lang: str = "en") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT)
    at.context["locale"] = "zh-CN" if lang == "zh" else "en-US"
    at.run()
    assert not at.exception, at.exception
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def all_text(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "title", "subheader", "text"):
        parts += texts(getattr(at, kind))
    for kind in ("button", "text_input", "number_input", "selectbox", "multiselect", "file_uploader", "expander", "tabs"):
        parts += [getattr(w, "label", "") or "" for w in getattr(at, kind)]
    return "\n".join(parts)


def wait_for(at: AppTest, done, timeout: float = 300.0) -> AppTest:
    """Rerun the page (as the page's polling fragment would) until `done(at)` holds."""
    deadline = time.monotonic() + timeout
    while not done(at):
        assert time.monotonic() < deadline, "the page never reached the expected state:\n" + all_text(at)
        time.sleep(1.0)
        at.run()
    return at


def write_chat_dataset(folder: Path, n: int = 8) -> Path:
    return write_jsonl(folder / "train.jsonl", chat_rows(n, "Who are you? ({i})", "I am Xiaoxing, a friendly assistant.", repeat=1))


# ---------------------------------------------------------------- every page, both languages

@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_page_renders_in_both_languages(lang):
    strings = catalog(lang)
    at = start_app(lang)
    assert strings["chat.title"] in texts(at.title)
    assert at.chat_input, "the chat page has a chat input"
    assert strings["app.language"] in [r.label for r in at.radio]
    for page in PAGES[1:]:
        open_page(at, page)
        assert strings[f"{page}.title"] in texts(at.title), page


def test_language_follows_the_browser_and_the_sidebar_switch():
    at = start_app("zh")
    assert "对话" in texts(at.title)
    at.radio(key="lang_switch").set_value("en").run()
    assert "Chat" in texts(at.title)
    open_page(at, "evals")
    assert catalog("en")["evals.upload"] in [u.label for u in at.file_uploader]


def test_page_text_has_no_missing_translation_keys():
    at = start_app("zh")
    for page in PAGES:
        open_page(at, page)
        shown = all_text(at)
        leaked = [key for key in catalog("en") if key in shown]
        assert not leaked, (page, leaked)


# ---------------------------------------------------------------- chat

@pytest.fixture(scope="module")
def indexed_home(tmp_path_factory):
    """A workspace whose default collection (the shipped docs) is indexed once for the chat tests.

    The index uses the built-in MiniLM embedder, as the app does; building it is the slow part, so
    the chat tests share it (the browser test builds its own, from a cold start).
    """
    from knowledge.retrieval import warm_up

    home = tmp_path_factory.mktemp("indexed-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEPILOT_HOME", str(home))
        warm_up("default")
    return home


@pytest.fixture
def with_index(indexed_home, monkeypatch):
    monkeypatch.setenv("TUNEPILOT_HOME", str(indexed_home))
    return indexed_home


def assistant_messages(at: AppTest):
    return [m for m in at.chat_message if m.name == "assistant"]


def test_chat_question_gets_a_cited_answer(with_index):
    at = start_app("en")
    at.chat_input[0].set_value("What learning rate should I use for LoRA?").run()
    assert not at.exception, at.exception
    reply = assistant_messages(at)[-1]
    answer = "\n".join(texts(reply.markdown))
    assert "[1]" in answer, answer
    cited = [e.label for e in reply.expander]
    assert cited and cited[0].startswith("[1] "), cited
    assert any(label.endswith(".md") or ".md ›" in label for label in cited), cited


def test_chinese_question_gets_a_cited_answer_and_chinese_ui(with_index):
    at = start_app("zh")
    at.chat_input[0].set_value("LoRA 的学习率应该设置为多少？").run()
    reply = assistant_messages(at)[-1]
    assert "[1]" in "\n".join(texts(reply.markdown))
    assert catalog("zh")["chat.sources"] in texts(reply.caption)


def test_training_request_shows_the_config_card_with_validation(tiny_model_dir, tmp_path):
    data = write_chat_dataset(tmp_path)
    at = start_app("en")
    at.chat_input[0].set_value(f"Fine-tune gemma-3-270m on {data} with LoRA for 1 epoch").run()
    assert not at.exception, at.exception
    strings = catalog("en")
    assert at.text_input(key="card1.base_model").value == "gemma-3-270m"
    assert at.text_input(key="card1.dataset_path").value == str(data)
    at.text_input(key="card1.base_model").set_value(str(tiny_model_dir)).run()
    assert at.selectbox(key="card1.method").value == "lora"
    for key in ("epochs", "learning_rate", "batch_size", "lora_r", "lora_alpha", "max_length", "max_steps"):
        assert at.number_input(key=f"card1.{key}").label, key
    launch = at.button(key="card1.launch")
    assert launch.label == strings["card.launch"]
    assert not launch.disabled, all_text(at)
    assert any(strings["card.memory"] in m for m in texts(at.markdown))
    assert len(at.get("download_button")) == 2
    # Editing a field re-validates: an impossible learning rate blocks the launch, with the rule cited.
    at.number_input(key="card1.learning_rate").set_value(-1.0).run()
    assert at.button(key="card1.launch").disabled
    assert at.error, "the broken field is reported"


def test_invalid_config_disables_launch_with_the_reason(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    at = start_app("en")
    at.chat_input[0].set_value(f"Fine-tune gemma-3-270m on {missing} with LoRA for 2 epochs").run()
    launch = at.button(key="card1.launch")
    assert launch.disabled
    reason = [c for c in texts(at.caption) if c.startswith("🔒")]
    assert reason and "Launch is disabled" in reason[0], texts(at.caption)
    assert at.error, "validation errors are listed with their rule ids"
    assert any("**" in e for e in texts(at.error))


# ---------------------------------------------------------------- jobs and models (one real tiny training run)

def tiny_job_config(tiny_model_dir, data, max_steps=4):
    from trainer.planning.config_io import parse_config

    return parse_config({
        "model": {"base_model": str(tiny_model_dir)},
        "method": {"type": "lora", "lora_r": 4, "lora_alpha": 8},
        "dataset": {"path": str(data), "max_seq_length": 64},
        "training": {"epochs": 1, "max_steps": max_steps, "batch_size": 2, "device": "cpu"},
        "saving": {"suffix": "uitest", "save_every_n_steps": 1000},
    })


def wait_job(job_id: str, states=("succeeded", "failed", "cancelled"), timeout=300):
    from trainer import jobs

    deadline = time.monotonic() + timeout
    while (job := jobs.get_job(job_id))["status"] not in states:
        assert time.monotonic() < deadline, job
        time.sleep(1.0)
    return job


def test_launch_from_chat_then_jobs_and_models_pages(tiny_model_dir, tmp_path):
    from trainer import jobs

    data = write_chat_dataset(tmp_path)
    at = start_app("en")
    at.chat_input[0].set_value(f"Fine-tune on {data} with LoRA for 1 epoch").run()
    at.text_input(key="card1.base_model").set_value(str(tiny_model_dir)).run()
    at.number_input(key="card1.max_steps").set_value(4).run()
    at.number_input(key="card1.batch_size").set_value(2).run()
    at.number_input(key="card1.max_length").set_value(64).run()
    at.button(key="card1.launch").click().run()
    assert not at.exception, at.exception
    created = jobs.list_jobs()
    assert len(created) == 1
    job_id = created[0]["id"]
    assert any(job_id in s for s in texts(at.success))

    job = wait_job(job_id)
    assert job["status"] == "succeeded", job

    open_page(at, "jobs")
    assert job_id in at.dataframe[0].value["id"].tolist()
    assert at.get("arrow_line_chart") or at.get("vega_lite_chart"), "the loss chart is drawn"
    assert any("job card" in e.label.lower() for e in at.expander)
    assert at.button(key="jobs.cancel").disabled

    open_page(at, "models")
    ft_id = job["fine_tuned_model"]
    assert at.selectbox(key="models.finetuned").value == ft_id
    at.button(key="models.merge").click().run()
    assert not at.exception, at.exception
    wait_for(at, lambda a: a.success or a.error)
    assert not at.error, texts(at.error)
    merged_msgs = [s for s in texts(at.success) if "merged" in s.lower()]
    assert merged_msgs, texts(at.success)
    at.text_area(key="models.prompt").input("Who are you?").run()
    at.slider(key="models.max_new_tokens").set_value(8).run()
    at.button(key="models.try").click().run()
    assert not at.exception, at.exception
    # Base, adapter and merged each answer, in their own column.
    wait_for(at, lambda a: len(a.text) == 3 or a.error)
    assert not at.error, texts(at.error)
    assert all(not reply.startswith("⚠️") for reply in texts(at.text)), texts(at.text)
    # The adapter folded into the base computes the same function as adapter-on-base: the merge's
    # own probe reports the logit difference. (Comparing greedy text is not a valid check here: the
    # tiny random model's logits nearly tie, so bf16 rounding of W + BA can flip a token.)
    import re

    diff = float(re.search(r"(\d\.\d+e[-+]\d+)", merged_msgs[0]).group(1))
    assert diff < 1e-2, merged_msgs[0]
    assert at.text[1].value and at.text[2].value


def test_jobs_page_picks_up_a_running_job_after_a_restart_and_cancels_it(tiny_model_dir, tmp_path):
    from trainer import jobs

    data = write_chat_dataset(tmp_path, n=16)
    job = jobs.create_job(tiny_job_config(tiny_model_dir, data, max_steps=100000))
    try:
        # A fresh AppTest is a fresh server process's view: it knows the job only from the database.
        at = open_page(start_app("zh"), "jobs")
        assert job["id"] in at.dataframe[0].value["id"].tolist()
        assert any("秒刷新" in c for c in texts(at.caption)), "the page polls an active job"
        cancel = at.button(key="jobs.cancel")
        assert not cancel.disabled
        cancel.click().run()
        assert not at.exception, at.exception
        assert wait_job(job["id"], timeout=120)["status"] == "cancelled"
        at.run()
        assert not at.button(key="jobs.resume").disabled
    finally:
        if jobs.get_job(job["id"])["status"] in ("queued", "running"):
            jobs.cancel_job(job["id"])


# ---------------------------------------------------------------- evals

def test_eval_upload_that_is_not_json_or_csv_is_one_error_line():
    at = open_page(start_app("en"), "evals")
    at.file_uploader(key="evals.upload").set_value(("notes.docx", b"PK\x03\x04 not a table", "application/octet-stream")).run()
    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1 and "notes.docx" in errors[0] and "\n" not in errors[0]


def test_eval_json_with_the_wrong_shape_is_one_error_line():
    at = open_page(start_app("en"), "evals")
    at.file_uploader(key="evals.upload").set_value(("broken.json", b'{"rows": [1, 2', "application/json")).run()
    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1 and "\n" not in errors[0], errors


def test_eval_gbk_csv_runs_on_the_tiny_model_and_shows_results(tiny_model_dir):
    csv = "问题,答案\n一加一等于几,二\n中国的首都是哪里,北京\n".encode("gbk")
    at = open_page(start_app("zh"), "evals")
    at.file_uploader(key="evals.upload").set_value(("测试集.csv", csv, "text/csv")).run()
    assert not at.error, texts(at.error)
    preview = at.dataframe[0].value
    assert "中国的首都是哪里" in preview["问题"].tolist()
    assert any("gbk" in c for c in texts(at.caption))
    assert at.selectbox(key="evals.expected_column").value == "答案"
    at.multiselect(key="evals.models").set_value([str(tiny_model_dir)]).run()
    at.number_input(key="evals.max_new_tokens").set_value(4).run()
    at.button(key="evals.run").click().run()
    wait_for(at, lambda a: catalog("zh")["evals.results"] in texts(a.subheader) or a.error)
    assert not at.error, texts(at.error)
    scores = at.dataframe[-2].value if len(at.dataframe) > 2 else at.dataframe[-1].value
    assert str(tiny_model_dir) in scores["model"].tolist()
    assert "exact" in scores.columns


# ---------------------------------------------------------------- knowledge

def test_knowledge_ingest_a_folder_and_search_it(tmp_path):
    docs = tmp_path / "mydocs"
    docs.mkdir()
    (docs / "warmup.md").write_text(
        "# Warmup for the zebra model\n\nThe zebra model needs a warmup ratio of 0.1 to train stably.\n", encoding="utf-8")
    at = open_page(start_app("en"), "knowledge")
    at.text_input(key="knowledge.collection").set_value("mine").run()
    at.text_input(key="knowledge.folder").set_value(str(docs)).run()
    at.button(key="knowledge.ingest").click().run()
    wait_for(at, lambda a: a.session_state["knowledge.task"] and any(catalog("en")["knowledge.ingested"] in s for s in texts(a.success)) or a.error)
    assert not at.error, texts(at.error)
    at.text_input(key="knowledge.query").set_value("zebra warmup ratio").run()
    assert not at.exception, at.exception
    assert any("warmup.md" in m for m in texts(at.markdown)), all_text(at)


def test_knowledge_missing_folder_is_one_error_line(tmp_path):
    at = open_page(start_app("en"), "knowledge")
    at.text_input(key="knowledge.folder").set_value(str(tmp_path / "nope")).run()
    at.button(key="knowledge.ingest").click().run()
    assert len(at.error) == 1 and "nope" in at.error[0].value


def test_eval_scorer_that_needs_a_missing_column_is_one_error_line(tiny_model_dir):
    csv = b"prompt_text,notes\nSay hi,greeting\n"
    at = open_page(start_app("en"), "evals")
    at.file_uploader(key="evals.upload").set_value(("nocolumns.csv", csv, "text/csv")).run()
    at.selectbox(key="evals.input_column").set_value("prompt_text").run()
    at.multiselect(key="evals.models").set_value([str(tiny_model_dir)]).run()
    at.multiselect(key="evals.scorers").set_value(["exact"]).run()
    at.button(key="evals.run").click().run()
    wait_for(at, lambda a: a.error or catalog("en")["evals.results"] in texts(a.subheader))
    errors = texts(at.error)
    assert len(errors) == 1 and "expected" in errors[0] and "\n" not in errors[0], errors


def test_compare_two_models_of_a_run(tiny_model_dir):
    from trainer.models import registry as models

    models.register_local("tiny", tiny_model_dir)
    csv = "question,answer\nWho are you?,I am Xiaoxing\n你是谁？,我是小星\n".encode("utf-8")
    at = open_page(start_app("en"), "evals")
    at.file_uploader(key="evals.upload").set_value(("pair.csv", csv, "text/csv")).run()
    at.multiselect(key="evals.models").set_value([str(tiny_model_dir), "tiny"]).run()
    at.multiselect(key="evals.scorers").set_value(["exact", "rouge_l"]).run()
    at.number_input(key="evals.max_new_tokens").set_value(4).run()
    at.button(key="evals.run").click().run()
    wait_for(at, lambda a: catalog("en")["evals.results"] in texts(a.subheader) or a.error)
    assert not at.error, texts(at.error)
    at.run()  # the compare tab lists the finished run
    assert at.selectbox(key="evals.model_a").value == str(tiny_model_dir)
    assert at.selectbox(key="evals.model_b").value == "tiny"
    at.button(key="evals.compare").click().run()
    assert not at.error, texts(at.error)
    verdicts = next(df.value for df in at.dataframe if "verdict" in df.value.columns)
    # The same weights under two names: greedy outputs match, so nothing is better.
    assert set(verdicts["scorer"]) == {"exact", "rouge_l"}
    assert set(verdicts["verdict"]) == {"no clear difference"}
    assert (verdicts["B - A"] == 0).all()


def test_unreachable_openai_engine_falls_back_with_a_notice(with_index):
    at = start_app("en")
    at.selectbox(key="engine.name").set_value("openai").run()
    at.text_input(key="engine.base_url").set_value("http://127.0.0.1:9/v1").run()
    at.text_input(key="engine.model").set_value("nothing-here").run()
    at.chat_input[0].set_value("What learning rate should I use for LoRA?").run()
    assert not at.exception, at.exception
    reply = "\n".join(texts(assistant_messages(at)[-1].markdown))
    assert "unavailable" in reply and "[1]" in reply, reply


def test_training_data_with_the_wrong_columns_never_launches(tiny_model_dir, tmp_path):
    from trainer import jobs

    bad = tmp_path / "wrong.jsonl"
    bad.write_text('{"foo": "bar"}\n{"foo": "baz"}\n', encoding="utf-8")
    at = start_app("en")
    at.chat_input[0].set_value(f"Fine-tune {tiny_model_dir} on {bad} with LoRA for 1 epoch").run()
    launch = at.button(key="card1.launch")
    if not launch.disabled:
        launch.click().run()
    assert not at.exception, at.exception
    assert at.error, "the data problem is reported"
    assert all("\n" not in e for e in texts(at.error))
    assert not jobs.list_jobs()


def test_knowledge_uploaded_files_are_indexed_and_counted():
    at = open_page(start_app("zh"), "knowledge")
    at.text_input(key="knowledge.collection").set_value("uploads").run()
    assert any("还没有文档" in i for i in texts(at.info))
    note = "# 长颈鹿模型\n\n长颈鹿模型的预热比例是 0.2，学习率是 1e-4。\n".encode("utf-8")
    at.file_uploader(key="knowledge.upload").set_value([("长颈鹿.md", note, "text/markdown")]).run()
    at.button(key="knowledge.ingest").click().run()
    wait_for(at, lambda a: any(catalog("zh")["knowledge.ingested"] in s for s in texts(a.success)) or a.error)
    assert not at.error, texts(at.error)
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[catalog("zh")["knowledge.documents"]] == "1"
    at.text_input(key="knowledge.query").set_value("长颈鹿 预热比例").run()
    assert any("长颈鹿.md" in m for m in texts(at.markdown)), all_text(at)


def test_conflicting_methods_in_the_request_block_launch(tmp_path):
    data = write_chat_dataset(tmp_path)
    at = start_app("en")
    at.chat_input[0].set_value(f"Fine-tune gemma-3-270m on {data} with QLoRA and full fine-tuning").run()
    assert at.button(key="card1.launch").disabled
    assert any("request.conflicting-methods" in e for e in texts(at.error)), texts(at.error)
