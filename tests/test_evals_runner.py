"""The runner end to end on the tiny model: two models, resume, failures, reports, openai: and PromptLayer.

Local HTTP servers (http.server in a thread, on 127.0.0.1) stand in for an OpenAI-compatible endpoint
and for PromptLayer's API, so the real `openai` client and `promptlayer` SDK do the talking.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from evals.errors import EvalError
from evals.runner import check_fail_under, run_eval
from evals.spec import build_spec
from tests.support import JsonServer, free_port

QUESTIONS = [
    {"question": "什么是 LoRA？", "answer": "低秩适配"},
    {"question": "QLoRA 用几位量化？", "answer": "4 位"},
    {"question": "Hello, how are you?", "answer": "fine"},
    {"question": "学习率通常是多少？", "answer": "2e-4"},
    {"question": "微调能教会模型什么？", "answer": "说话方式和角色"},
]


def write_gbk_csv(path, rows=QUESTIONS):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode("gbk"))
    return path


def fake_openai(path, body, headers):
    """Echoes the question back as "answer: <question>"; rows mentioning FAIL get an HTTP 500."""
    if not path.endswith("/chat/completions"):
        return 404, {"error": {"message": "not found"}}
    question = body["messages"][-1]["content"]
    if "FAIL" in question:
        return 500, {"error": {"message": "model crashed", "type": "server_error"}}
    if body["model"] == "judge":
        return 200, _completion("SCORE: 8\nclose enough", body["model"])
    return 200, _completion(f"answer: {question}", body["model"])


def _completion(text, model):
    return {"id": "c1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


@pytest.fixture
def spy_generate(monkeypatch):
    """Counts real trainer.models.generation.generate calls (the real function still runs)."""
    from trainer.models import generation

    calls = []
    real = generation.generate

    def counting(loaded, messages_batch, *args, **kwargs):
        calls.append(len(messages_batch))
        return real(loaded, messages_batch, *args, **kwargs)

    monkeypatch.setattr(generation, "generate", counting)
    return calls


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.integration
def test_two_local_models_gbk_round_trip_and_resume(tmp_path, tiny_model_dir, spy_generate):
    from trainer.models import registry as models

    models.register_local("tiny-b", tiny_model_dir)
    dataset = write_gbk_csv(tmp_path / "questions.csv")
    out = tmp_path / "run"
    spec = build_spec(dataset=str(dataset), models=[str(tiny_model_dir), "tiny-b"], out=str(out), max_new_tokens=6,
                      batch_size=2, scorers=["exact", "rouge_l", "chrf", "latency"])
    summary = run_eval(spec, progress=False)

    assert set(summary) >= {"run_dir", "rows", "models"}
    assert summary["run_dir"] == str(out) and summary["rows"] == 5
    assert list(summary["models"]) == [str(tiny_model_dir), "tiny-b"]
    for info in summary["models"].values():
        assert info["errors"] == 0
        assert set(info["scores"]) == {"exact", "rouge_l", "chrf", "latency"}
        assert all(isinstance(v, float) for v in info["scores"].values())
    assert summary["dataset"]["encoding"] == "gbk"
    assert sorted(spy_generate) == [1, 1, 2, 2, 2, 2]  # 5 rows in batches of 2, per model

    records = read_jsonl(out / "results.jsonl")
    assert len(records) == 10
    questions = [q["question"] for q in QUESTIONS]
    assert sorted({r["input"] for r in records}) == sorted(questions)
    # The same model under two names answers identically (greedy decoding is deterministic).
    by_model = {m: {r["row"]: r["output"] for r in records if r["model"] == m} for m in summary["models"]}
    assert by_model[str(tiny_model_dir)] == by_model["tiny-b"]

    # Chinese survives unchanged into every report.
    saved = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert saved["models"] == summary["models"]
    csv_bytes = (out / "results.csv").read_bytes()
    assert csv_bytes.startswith(b"\xef\xbb\xbf")
    csv_rows = list(csv.DictReader(io.StringIO(csv_bytes.decode("utf-8-sig"))))
    assert sorted({r["input"] for r in csv_rows}) == sorted(questions)
    assert {r["expected"] for r in csv_rows} == {q["answer"] for q in QUESTIONS}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in html
    for q in QUESTIONS:
        assert q["question"] in html and q["answer"] in html
    assert "http://" not in html and "https://" not in html  # self-contained: nothing to fetch
    assert "<svg" in html and "vs" in html

    # Resume: the same out folder generates nothing new.
    spy_generate.clear()
    again = run_eval(spec, progress=False)
    assert spy_generate == []
    assert again["models"] == summary["models"]
    assert len(read_jsonl(out / "results.jsonl")) == 10

    # Adding a scorer re-scores stored replies without generating.
    spec2 = build_spec(dataset=str(dataset), models=[str(tiny_model_dir), "tiny-b"], out=str(out), max_new_tokens=6,
                       batch_size=2, scorers=["exact", "rouge_l", "chrf", "latency", "icontains"])
    third = run_eval(spec2, progress=False)
    assert spy_generate == []
    assert all("icontains" in info["scores"] for info in third["models"].values())


@pytest.mark.integration
def test_resume_after_a_partial_run(tmp_path, tiny_model_dir, spy_generate):
    dataset = write_gbk_csv(tmp_path / "q.csv")
    out = tmp_path / "run"
    base = dict(dataset=str(dataset), models=[str(tiny_model_dir)], out=str(out), max_new_tokens=4, batch_size=16,
                scorers=["exact"])
    run_eval(build_spec(**base, limit=2), progress=False)
    assert spy_generate == [2]
    spy_generate.clear()
    seen = []
    summary = run_eval(build_spec(**base), progress=False, on_progress=lambda *a: seen.append(a))
    assert spy_generate == [3]  # only the three rows not scored before
    assert seen == [(str(tiny_model_dir), 1, 3), (str(tiny_model_dir), 2, 3), (str(tiny_model_dir), 3, 3)]
    assert summary["rows"] == 5 and summary["models"][str(tiny_model_dir)]["rows_scored"] == 5


@pytest.mark.integration
def test_a_model_failing_mid_run_marks_rows_as_errors_and_goes_on(tmp_path, tiny_model_dir, monkeypatch):
    from trainer.models import generation

    real = generation.generate

    def flaky(loaded, messages_batch, *args, **kwargs):
        if any("BOOM" in m[-1]["content"] for m in messages_batch):
            raise RuntimeError("CUDA error: device-side assert triggered")
        return real(loaded, messages_batch, *args, **kwargs)

    monkeypatch.setattr(generation, "generate", flaky)
    rows = QUESTIONS[:2] + [{"question": "BOOM 这一行会失败", "answer": "x"}] + QUESTIONS[2:]
    dataset = write_gbk_csv(tmp_path / "q.csv", rows)
    out = tmp_path / "run"
    summary = run_eval(build_spec(dataset=str(dataset), models=[str(tiny_model_dir)], out=str(out), max_new_tokens=4,
                                  batch_size=4, scorers=["exact", "rouge_l"]), progress=False)
    info = summary["models"][str(tiny_model_dir)]
    assert info["errors"] == 1 and info["rows_scored"] == 5  # the batch was retried row by row
    bad = [r for r in read_jsonl(out / "results.jsonl") if r["error"]]
    assert len(bad) == 1 and bad[0]["input"] == "BOOM 这一行会失败"
    assert "device-side assert" in bad[0]["error"] and bad[0]["scores"] == {}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "error: RuntimeError: CUDA error" in html

    # A re-run retries only the failed row.
    monkeypatch.setattr(generation, "generate", real)
    summary = run_eval(build_spec(dataset=str(dataset), models=[str(tiny_model_dir)], out=str(out), max_new_tokens=4,
                                  batch_size=4, scorers=["exact", "rouge_l"]), progress=False)
    assert summary["models"][str(tiny_model_dir)]["errors"] == 0


def test_user_mistakes_fail_before_any_generation(tmp_path, tiny_model_dir, spy_generate):
    dataset = write_gbk_csv(tmp_path / "q.csv")
    with pytest.raises(EvalError, match="Unknown model 'no-such-model'"):
        run_eval(build_spec(dataset=str(dataset), models=[str(tiny_model_dir), "no-such-model"]), progress=False)
    with pytest.raises(EvalError, match=r"no column 'prompt' \(input\); columns found: 'question', 'answer'"):
        run_eval(build_spec(dataset=str(dataset), models=[str(tiny_model_dir)], input_column="prompt"), progress=False)
    with pytest.raises(EvalError, match=r"uses \{topic\}"):
        run_eval(build_spec(dataset=str(dataset), models=[str(tiny_model_dir)], template="讲讲 {topic}"), progress=False)
    with pytest.raises(EvalError, match="need an expected answer"):
        _no_expected(tmp_path, tiny_model_dir)
    (tmp_path / "blank.csv").write_text("question,answer\nhi,x\n,y\n", encoding="utf-8")
    with pytest.raises(EvalError, match="Row\\(s\\) 2 .* empty prompt"):
        run_eval(build_spec(dataset=str(tmp_path / "blank.csv"), models=[str(tiny_model_dir)]), progress=False)
    assert spy_generate == []


def _no_expected(tmp_path, tiny_model_dir):
    (tmp_path / "only_q.csv").write_text("question\nhi\n", encoding="utf-8")
    run_eval(build_spec(dataset=str(tmp_path / "only_q.csv"), models=[str(tiny_model_dir)], scorers=["exact"]), progress=False)


def test_fail_under_checks_every_model_or_one():
    summary = {"scorers": [{"name": "rouge_l", "higher_is_better": True}, {"name": "latency", "higher_is_better": False}],
               "models": {"base": {"scores": {"rouge_l": 0.2, "latency": 0.5}, "errors": 0},
                          "ft": {"scores": {"rouge_l": 0.6, "latency": 2.0}, "errors": 0}}}
    assert check_fail_under(summary, {"rouge_l": 0.5}) == ["base: rouge_l = 0.2000 < 0.5"]
    assert check_fail_under(summary, {"rouge_l@ft": 0.5}) == []
    assert check_fail_under(summary, {"latency": 1.0}) == ["ft: latency = 2.0000 > 1.0 (lower is better)"]
    with pytest.raises(EvalError, match="computed no scorer 'bleu'"):
        check_fail_under(summary, {"bleu": 0.1})
    with pytest.raises(EvalError, match="no model 'other'"):
        check_fail_under(summary, {"rouge_l@other": 0.1})


def test_openai_provider_against_a_local_compatible_server(tmp_path):
    rows = [{"q": "你好", "a": "answer: 你好"}, {"q": "please FAIL here", "a": "x"}, {"q": "2+2?", "a": "answer: 2+2?"}]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    with JsonServer(fake_openai) as server:
        spec = build_spec(dataset=str(tmp_path / "q.jsonl"), input_column="q", expected_column="a",
                          models=[{"id": "openai:tiny", "base_url": server.url + "/v1"}], out=str(tmp_path / "run"),
                          scorers=["exact", "latency", "perplexity"], system="简短回答")
        summary = run_eval(spec, progress=False)
    info = summary["models"]["openai:tiny"]
    assert info["errors"] == 1 and info["scores"]["exact"] == 1.0
    assert "perplexity" not in info["scores"] and info["skipped"] == {"perplexity": "not applicable to this model"}
    assert any("perplexity does not apply" in n for n in summary["notices"])
    sent = [body for path, body, _ in server.calls]
    assert {b["model"] for b in sent} == {"tiny"} and all(b["temperature"] == 0 for b in sent)
    assert sent[0]["messages"][0] == {"role": "system", "content": "简短回答"}
    bad = [r for r in read_jsonl(tmp_path / "run" / "results.jsonl") if r["error"]]
    assert bad[0]["error"].startswith("HTTP 500") and "model crashed" in bad[0]["error"]


def test_unreachable_endpoint_gives_error_rows_and_a_notice(tmp_path):
    port = free_port()  # a port nobody listens on
    (tmp_path / "q.csv").write_text("question,answer\na,b\nc,d\ne,f\n", encoding="utf-8")
    spec = build_spec(dataset=str(tmp_path / "q.csv"), models=[{"id": "openai:x", "base_url": f"http://127.0.0.1:{port}/v1"}],
                      scorers=["exact"], batch_size=1)
    summary = run_eval(spec, progress=False)
    assert summary["models"]["openai:x"]["errors"] == 3
    assert any(f"cannot reach http://127.0.0.1:{port}/v1" in n for n in summary["notices"])


def test_openai_provider_without_an_endpoint_is_a_user_error(tmp_path, monkeypatch):
    for var in ("TUNEPILOT_OPENAI_BASE_URL", "OPENAI_BASE_URL", "TUNEPILOT_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "q.csv").write_text("question,answer\na,b\n", encoding="utf-8")
    with pytest.raises(EvalError, match="needs an endpoint"):
        run_eval(build_spec(dataset=str(tmp_path / "q.csv"), models=["openai:gpt"]), progress=False)


@pytest.mark.integration
def test_llm_judge_through_an_openai_compatible_judge(tmp_path, tiny_model_dir):
    (tmp_path / "q.csv").write_text("question,answer\nhi,hello\n", encoding="utf-8")
    with JsonServer(fake_openai) as server:
        spec = build_spec(dataset=str(tmp_path / "q.csv"), models=[str(tiny_model_dir)], max_new_tokens=3,
                          scorers=["llm_judge"], judge={"base_url": server.url + "/v1", "model": "judge"})
        summary = run_eval(spec, progress=False)
    assert summary["models"][str(tiny_model_dir)]["scores"]["llm_judge"] == pytest.approx(0.8)
    assert "Rubric" in server.calls[0][1]["messages"][0]["content"]

    # A judge that cannot be reached: the scorer fails on every row, said in a notice, never a silent 0.
    spec = spec.model_copy(update={"judge": spec.judge.model_copy(update={"base_url": server.url + "/v1"}),
                                   "out": str(tmp_path / "run2")})
    summary = run_eval(spec, progress=False)
    info = summary["models"][str(tiny_model_dir)]
    assert "llm_judge" not in info["scores"] and info["skipped"]["llm_judge"].startswith("failed on every row")
    assert any(n.startswith("llm_judge failed on every row") for n in summary["notices"])


def promptlayer_api(path, body, headers):
    if path == "/log-request":
        return 201, {"id": 100 + len(body.get("tags", [])), "prompt_version": None}
    if path == "/library-track-score":
        return 200, {"success": True}
    return 404, {"success": False}


@pytest.mark.integration
def test_promptlayer_logging_only_with_a_key(tmp_path, tiny_model_dir, monkeypatch):
    dataset = write_gbk_csv(tmp_path / "q.csv", QUESTIONS[:2])
    with JsonServer(promptlayer_api) as server:
        monkeypatch.setenv("PROMPTLAYER_BASE_URL", server.url)
        monkeypatch.delenv("PROMPTLAYER_API_KEY", raising=False)
        run_eval(build_spec(dataset=str(dataset), models=[str(tiny_model_dir)], max_new_tokens=3,
                            scorers=["exact", "rouge_l", "latency"], out=str(tmp_path / "a")), progress=False)
        assert server.calls == []  # no key: nothing leaves the machine

        monkeypatch.setenv("PROMPTLAYER_API_KEY", "pl-test-key")
        summary = run_eval(build_spec(dataset=str(dataset), models=[str(tiny_model_dir)], max_new_tokens=3,
                                      scorers=["exact", "rouge_l", "latency"], out=str(tmp_path / "b"), tags=["ci"]),
                           progress=False)
    logs = [(b, h) for p, b, h in server.calls if p == "/log-request"]
    scores = [b for p, b, _ in server.calls if p == "/library-track-score"]
    assert len(logs) == 2
    body, headers = logs[0]
    assert headers.get("X-API-KEY") == "pl-test-key"
    assert body["provider"] == "huggingface" and body["tags"] == ["tunepilot-eval", "ci"]
    assert body["input"]["messages"][0]["content"][0]["text"] in {q["question"] for q in QUESTIONS[:2]}
    assert body["prompt_input_variables"]["question"] in {q["question"] for q in QUESTIONS[:2]}
    assert body["metadata"]["run"] == "b"
    # exact and rouge_l per row (latency is not a 0-1 score, so it is not sent).
    assert sorted(s["name"] for s in scores) == ["exact", "exact", "rouge_l", "rouge_l"]
    assert all(0 <= s["score"] <= 100 and s["request_id"] == 102 for s in scores)
    assert not any("PromptLayer" in n for n in summary["notices"])


@pytest.mark.integration
def test_adding_a_model_to_an_existing_run_folder_keeps_the_first(tmp_path, tiny_model_dir):
    from evals.compare import compare
    from trainer.models import registry as models

    models.register_local("tiny-ft", tiny_model_dir)
    dataset = write_gbk_csv(tmp_path / "q.csv", QUESTIONS[:2])
    out = tmp_path / "run"
    common = dict(dataset=str(dataset), out=str(out), max_new_tokens=3, scorers=["exact", "chrf"])
    run_eval(build_spec(models=[str(tiny_model_dir)], **common), progress=False)
    summary = run_eval(build_spec(models=["tiny-ft"], **common), progress=False)
    assert list(summary["models"]) == ["tiny-ft"]
    assert {r["model"] for r in read_jsonl(out / "results.jsonl")} == {str(tiny_model_dir), "tiny-ft"}
    result = compare(out, model_a=str(tiny_model_dir), model_b="tiny-ft")
    assert result["paired_rows"] == 2 and result["scorers"]["exact"]["ties"] == 2


@pytest.mark.integration
def test_a_model_that_cannot_load_errors_its_rows_and_the_next_model_still_runs(tmp_path, tiny_model_dir):
    from trainer.models import registry as models

    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "gemma3_text"}', encoding="utf-8")  # no weights, no tokenizer
    models.register_local("broken", broken)
    dataset = write_gbk_csv(tmp_path / "q.csv", QUESTIONS[:2])
    summary = run_eval(build_spec(dataset=str(dataset), models=["broken", str(tiny_model_dir)], max_new_tokens=3,
                                  scorers=["exact"], out=str(tmp_path / "run")), progress=False)
    assert summary["models"]["broken"]["errors"] == 2 and summary["models"]["broken"]["scores"] == {}
    assert summary["models"][str(tiny_model_dir)]["errors"] == 0
    errors = {r["error"] for r in read_jsonl(tmp_path / "run" / "results.jsonl") if r["model"] == "broken"}
    assert len(errors) == 1 and next(iter(errors)).startswith("cannot load broken: ")
