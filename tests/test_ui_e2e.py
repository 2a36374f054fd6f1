"""End to end in a real browser: the app served by `streamlit run` on loopback, driven by headless Chromium.

Flow: ask a question -> cited answer; describe a training run on the tiny model -> config card ->
Launch -> the job reaches `succeeded` on the Jobs page -> run an eval -> results table.
A screenshot of each step goes to test-output/ui-e2e/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import chat_rows, free_port, write_jsonl

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "tunepilot" / "ui" / "app.py"
SHOTS = REPO / "test-output" / "ui-e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# Generous: the shared CI machine is slow, and the first page load imports torch and builds the index.
STEP_TIMEOUT_MS = 300_000  # training, an eval run, the first answer (index build)
QUICK_TIMEOUT_MS = 120_000  # everything else

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (scripts/install_browser.sh)"),
]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("streamlit did not become healthy")


@pytest.fixture
def served_app(tunepilot_home, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TUNEPILOT_HOME": str(tunepilot_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        print((tmp_path / "streamlit.log").read_text(encoding="utf-8", errors="replace")[-4000:])
        from trainer import jobs

        for job in jobs.list_jobs():  # never leave a worker running after the test
            if job["status"] in ("queued", "running"):
                jobs.cancel_job(job["id"], wait=10)


def shot(page, name: str, focus=None) -> None:
    """Screenshot; Streamlit scrolls inside its main pane, so bring `focus` into view first."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if focus is not None:
        focus.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def settle(page) -> None:
    """Wait until Streamlit has finished the script run an interaction started."""
    page.wait_for_timeout(500)  # the rerun request reaches the server first
    page.wait_for_function(
        "() => { const app = document.querySelector('[data-testid=\"stApp\"]');"
        " return app && app.getAttribute('data-test-script-state') === 'notRunning'; }",
        timeout=STEP_TIMEOUT_MS,
    )
    page.wait_for_timeout(300)


def set_number(page, label: str, value) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    settle(page)


def ask(page, text: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")
    settle(page)


def write_dataset(folder: Path) -> Path:
    return write_jsonl(folder / "persona.jsonl", chat_rows(8, "Who are you? #{i}", "I am Xiaoxing, a friendly assistant.", repeat=1))


def test_ask_configure_train_and_evaluate_in_the_browser(served_app, tiny_model_dir, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=QUICK_TIMEOUT_MS)
    data = write_dataset(tmp_path)
    evalset = tmp_path / "persona_eval.csv"
    evalset.write_text("question,answer\nWho are you?,I am Xiaoxing\n你是谁？,我是小星\n", encoding="utf-8")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            # 1. A question gets a streamed answer with numbered citations that expand to the passage.
            page.goto(served_app)
            expect(page.get_by_role("heading", name="Chat")).to_be_visible()
            ask(page, "What learning rate should I use for LoRA?")
            answer = page.get_by_test_id("stChatMessage").last
            expect(answer).to_contain_text("[1]", timeout=STEP_TIMEOUT_MS)
            citation = answer.get_by_test_id("stExpander").first
            expect(citation).to_contain_text(re.compile(r"\[1\] .+\.md"))
            citation.click()
            expect(citation.get_by_test_id("stExpanderDetails")).to_contain_text("LoRA")
            page.wait_for_timeout(500)  # let the expander finish opening before the screenshot
            shot(page, "01-cited-answer")

            # 2. A training request gets the config card; edits re-validate; Launch starts a job.
            ask(page, f"Fine-tune {tiny_model_dir} on {data} with LoRA for 1 epoch")
            expect(page.get_by_role("heading", name=re.compile("Training config"))).to_be_visible()
            expect(page.get_by_label("Base model", exact=True)).to_have_value(str(tiny_model_dir))
            set_number(page, "Max steps (0 = by epochs)", 3)
            set_number(page, "Batch size", 2)
            set_number(page, "Max length (tokens)", 64)
            launch = page.get_by_role("button", name="Launch training")
            expect(launch).to_be_enabled()
            shot(page, "02-config-card", focus=launch)
            launch.click()
            expect(page.get_by_text(re.compile(r"Job \S+ started"))).to_be_visible()
            shot(page, "03-launched")

            # 3. The Jobs page follows the job until it succeeds (it polls; no reload needed).
            page.get_by_text("Watch it on the Jobs page").click()
            expect(page.get_by_role("heading", name="Training jobs")).to_be_visible()
            expect(page.get_by_text("Fine-tuned model:")).to_be_visible(timeout=STEP_TIMEOUT_MS)
            settle(page)
            expect(page.get_by_test_id("stExpander").filter(has_text="Job card").first).to_be_visible()
            shot(page, "04-job-succeeded", focus=page.get_by_text("Training loss"))

            # 4. An eval of base vs fine-tuned on an uploaded CSV ends in a results table.
            page.goto(f"{served_app}/evals")
            expect(page.get_by_role("heading", name="Evals")).to_be_visible()
            page.locator("input[type=file]").first.set_input_files(str(evalset))
            expect(page.get_by_text("2 rows, 2 columns")).to_be_visible()
            settle(page)
            set_number(page, "Max new tokens", 4)
            page.get_by_role("button", name="Run eval").click()
            results = page.get_by_role("heading", name="Results")
            expect(results).to_be_visible(timeout=STEP_TIMEOUT_MS)
            settle(page)
            table = page.get_by_test_id("stDataFrame").filter(visible=True).last
            expect(table).to_be_visible()
            shot(page, "05-eval-results", focus=table)

            # 5. Models: merge the adapter, then one prompt on base, adapter and merged side by side.
            page.goto(f"{served_app}/models")
            expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
            page.get_by_role("button", name="Merge").click()
            expect(page.get_by_text("Merged into")).to_be_visible(timeout=STEP_TIMEOUT_MS)
            settle(page)
            prompt = page.get_by_label("Prompt", exact=True)
            prompt.fill("Who are you?")
            prompt.press("Control+Enter")
            settle(page)
            page.get_by_role("button", name="Generate").click()
            expect(page.get_by_test_id("stText")).to_have_count(3, timeout=STEP_TIMEOUT_MS)
            settle(page)
            shot(page, "06-models-side-by-side", focus=page.get_by_test_id("stText").first)

            # 6. Knowledge: the index the chat answered from, and a search.
            page.goto(f"{served_app}/knowledge")
            expect(page.get_by_role("heading", name="Knowledge", exact=True)).to_be_visible()
            expect(page.get_by_text("Documents", exact=True)).to_be_visible()
            page.get_by_role("tab", name="Search playground").click()
            query = page.get_by_label("Query", exact=True)
            query.fill("QLoRA 4-bit")
            query.press("Enter")
            settle(page)
            expect(page.get_by_text(re.compile(r"^1\. "))).to_be_visible()
            shot(page, "07-knowledge-search")

            # 7. The same page in Chinese, following the switch in the sidebar.
            page.get_by_text("中文").click()
            settle(page)
            expect(page.get_by_role("heading", name="知识库", exact=True)).to_be_visible()
            expect(page.get_by_role("tab", name="检索测试")).to_be_visible()
            shot(page, "08-knowledge-zh")
        except Exception:
            shot(page, "99-failure")
            raise
        finally:
            browser.close()
