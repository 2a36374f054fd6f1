"""promptfoo configs: loading (prompts, providers, tests, CSV conventions), each assertion type, and whole runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.errors import EvalError
from evals.promptfoo import load_suite, parse_assertion_string, provider_mapping
from evals.scorers.assertions import Assertions
from evals.scorers.base import RowContext

FIXTURES = Path(__file__).parent / "fixtures" / "promptfoo"


def run_asserts(output: str, asserts: list[dict], threshold=None, latency=0.1):
    row = {"__asserts": asserts, "__threshold": threshold}
    return Assertions().score(RowContext(output=output, expected=None, prompt="p", messages=[], row=row, latency_s=latency))


@pytest.mark.parametrize("text, expected", [
    ("icontains:bonjour", {"type": "icontains", "value": "bonjour"}),
    ("contains-any: <b>,</span>", {"type": "contains-any", "value": "<b>,</span>"}),
    ("similar(0.8):Hello there", {"type": "similar", "value": "Hello there", "threshold": 0.8}),
    ("not-contains:error", {"type": "not-contains", "value": "error"}),
    ("is-json", {"type": "is-json"}),
    ("grade:is polite", {"type": "llm-rubric", "value": "is polite"}),
    ("fn:output.includes('x')", {"type": "javascript", "value": "output.includes('x')"}),
    ("Paris", {"type": "equals", "value": "Paris"}),
    ("Note: not a type", {"type": "equals", "value": "Note: not a type"}),
])
def test_assertion_strings(text, expected):
    got = parse_assertion_string(text, "t")
    assert {k: v for k, v in got.items() if k != "source"} == expected


def test_csv_expected_is_an_assertion_never_a_reference():
    suite = load_suite(FIXTURES / "simple-csv" / "promptfooconfig.yaml")
    assert len(suite.rows) == 3 * 2  # tests x prompts, as promptfoo runs them
    first = suite.rows[0]
    assert first["__asserts"][0]["type"] == "icontains" and first["__asserts"][0]["value"] == "bonjour"
    assert "__expected" not in first and first["__description"] == "French greeting"
    assert first["__metadata"] == {"topic": "greetings"}
    assert first["__prompt"] == 'Translate into French with a polite tone: "Good morning"'  # (style | load).tone
    assert suite.providers == [{"id": "openai:gpt-4o-mini"}]


def test_inline_tests_refs_files_and_yaml12_booleans():
    suite = load_suite(FIXTURES / "simple-test" / "promptfooconfig.yaml")
    assert len(suite.rows) == 6 * 2
    assert suite.rows[0]["__prompt"] == "Rephrase this from English to Pirate: Yes"  # `body: Yes` is text, as in promptfoo
    judged = next(r for r in suite.rows if r["__description"] == "judged by an LLM")
    assert judged["__asserts"][1]["type"] == "icontains-any"  # $ref resolved
    assert any(r["__test"].startswith("more_tests.yaml") for r in suite.rows)


def test_provider_mapping_names_what_it_does():
    assert provider_mapping("openai:chat:gpt-4o", 0)["tunepilot"] == {"id": "openai:gpt-4o"}
    ollama = provider_mapping("ollama:chat:llama3", 0)
    assert ollama["tunepilot"]["base_url"].startswith("http://localhost:11434")
    assert provider_mapping({"id": "openai:gpt-4o", "config": {"apiBaseUrl": "http://h/v1", "temperature": 0.2}}, 0) == {
        "promptfoo": "openai:gpt-4o", "tunepilot": {"id": "openai:gpt-4o", "base_url": "http://h/v1"},
        "how": provider_mapping("openai:x", 0)["how"], "not_applied": ["temperature"]}
    bedrock = provider_mapping("bedrock:anthropic.claude", 0)
    assert bedrock["tunepilot"] is None and "not supported" in bedrock["how"]


@pytest.mark.parametrize("kind, value, output, passed", [
    ("equals", "Aye", "Aye", True), ("equals", "Aye", "Aye!", False),
    ("contains", "Aye", "Aye aye", True), ("icontains", "AYE", "aye", True),
    ("contains-any", "x,aye", "aye", True), ("contains-all", "x,aye", "aye", False),
    ("icontains-all", ["AYE", "MATE"], "aye mate", True), ("icontains-any", "zz,yy", "aye", False),
    ("regex", r"^\d+$", "42", True), ("starts-with", "Ah", "Ahoy", True), ("not-starts-with", "Ah", "Ahoy", False),
    ("is-json", None, '{"name": "x"}', True), ("is-json", None, "name: x", False),
    ("is-json", {"type": "object", "required": ["age"]}, '{"name": "x"}', False),
    ("is-json", "{type: object, required: [name]}", '{"name": "x"}', True),
    ("contains-json", None, 'here: {"a": 1} ok', True), ("levenshtein", "hello", "hallo", True),
])
def test_each_deterministic_assertion(kind, value, output, passed):
    a = {"type": kind} if value is None else {"type": kind, "value": value}
    result = run_asserts(output, [a])
    assert result.details["results"][0]["pass"] is passed
    assert result.value == (1.0 if passed else 0.0)


def test_weights_threshold_and_weight_zero():
    asserts = [{"type": "equals", "value": "Hello world", "weight": 2}, {"type": "contains", "value": "world"}]
    failed = run_asserts("Goodbye world", asserts)
    assert failed.details["score"] == pytest.approx(1 / 3, abs=1e-3) and failed.value == 0.0
    assert run_asserts("Goodbye world", asserts, threshold=0.2).value == 1.0
    assert run_asserts("x", [{"type": "equals", "value": "y", "weight": 0}]).value == 1.0


def test_unsupported_and_judgeless_assertions_are_named_not_scored(monkeypatch):
    for var in ("TUNEPILOT_OPENAI_BASE_URL", "TUNEPILOT_OPENAI_MODEL", "OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY",
                "TUNEPILOT_OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    result = run_asserts("Ahoy", [{"type": "javascript", "value": "output.startsWith('A')"},
                                  {"type": "llm-rubric", "value": "pirate"}, {"type": "contains", "value": "Ahoy"}])
    errors = [r.get("error", "") for r in result.details["results"]]
    assert errors[0].startswith("not supported: JavaScript") and "needs an LLM judge" in errors[1] and not errors[2]
    assert result.value is None and result.details["pass"] is None  # unknown, never counted as a pass or a fail


def test_similar_uses_the_embedder():
    close = run_asserts("Hello, world", [{"type": "similar", "value": "Hello world"}])
    far = run_asserts("Quarterly tax filing deadlines", [{"type": "similar", "value": "Hello world"}])
    assert close.details["results"][0]["pass"] and not far.details["results"][0]["pass"]


def test_nunjucks_tags_filters_and_json_values_render(tmp_path):
    from evals.promptfoo import render

    text = render("{% if lang == 'zh' %}请{% else %}Please{% endif %} {{ q | trim | upper }} {{ (cfg | load).n }} {{ obj }} {{ flag }}",
                  {"lang": "en", "q": " hi ", "cfg": '{"n": 3}', "obj": {"a": 1}, "flag": True}, "test")
    assert text == 'Please HI 3 {"a": 1} true'
    with pytest.raises(EvalError, match="cannot be rendered"):
        render("{{ q.__class__.__mro__ }}{% for %}", {"q": "x"}, "test")


def test_bad_inputs_are_one_line_errors(tmp_path):
    cfg = tmp_path / "promptfooconfig.yaml"
    cfg.write_text("prompts: ['hi {{ who }}']\ntests: [{vars: {x: 1}}]\n")
    with pytest.raises(EvalError, match="undefined value .*'who' is undefined.*vars: x"):
        load_suite(cfg)
    cfg.write_text("prompts: ['{{ x | load }}']\ntests: [{vars: {x: 'not json'}}]\n")
    with pytest.raises(EvalError, match="needs JSON text"):
        load_suite(cfg)
    cfg.write_text("prompts: ['hi']\ntests: file://missing.csv\n")
    with pytest.raises(EvalError, match="does not exist"):
        load_suite(cfg)


def test_vars_lists_default_test_prefix_metadata_arrays_and_config_columns(tmp_path):
    (tmp_path / "t.csv").write_text(
        "q,__expected1,__expected2,__metadata:tags[],__config:__expected2:threshold,__prefix,__threshold,__weird\n"
        'hi,similar:hello,similar:hey,"a,b\\,c",0.3,>> ,0.5,x\n', encoding="utf-8")
    cfg = tmp_path / "promptfooconfig.yaml"
    cfg.write_text("""
prompts: ["{{q}} / {{lang}}"]
defaultTest:
  vars: {lang: en}
  assert: [{type: not-contains, value: "@@"}]
tests:
  - file://t.csv
  - vars: {q: [one, two], lang: fr}
    options: {suffix: " !", transform: output.trim()}
    assert: [{type: equals, value: "{{q}}"}]
""", encoding="utf-8")
    suite = load_suite(cfg)
    csv_row, one, two = suite.rows
    assert csv_row["__prompt"] == ">> hi / en" and csv_row["__threshold"] == 0.5
    assert csv_row["__metadata"] == {"tags": ["a", "b,c"]}
    assert [a["type"] for a in csv_row["__asserts"]] == ["not-contains", "similar", "similar"]
    assert csv_row["__asserts"][2]["threshold"] == 0.3 and "threshold" not in csv_row["__asserts"][1]
    assert (one["__prompt"], two["__prompt"]) == ("one / fr !", "two / fr !")  # list vars: every combination
    assert one["__asserts"][1]["value"] == "one"  # vars are rendered into assertion values
    assert any("__weird" in n for n in suite.notices) and any("options.transform" in n for n in suite.notices)


def test_unrunnable_providers_are_named(tmp_path):
    from evals.spec import build_spec

    cfg = tmp_path / "promptfooconfig.yaml"
    cfg.write_text("prompts: [hi]\nproviders: [bedrock:claude, 'python:provider.py']\ntests: [{vars: {}}]\n")
    with pytest.raises(EvalError, match="None of the promptfoo providers can run.*bedrock:claude.*pass --model"):
        build_spec(cfg)
    spec = build_spec(cfg, models=["gemma-3-270m"])
    assert [p.id for p in spec.providers] == ["gemma-3-270m"] and spec.scorers[0].name == "asserts"


def test_chat_json_prompts_and_text_vars_from_files(tmp_path):
    (tmp_path / "chat.json").write_text(json.dumps([{"role": "system", "content": "Be {{tone}}."},
                                                    {"role": "user", "content": "{{doc}}"}]))
    (tmp_path / "doc.txt").write_text("the document")
    cfg = tmp_path / "promptfooconfig.yaml"
    cfg.write_text("prompts: [file://chat.json]\ntests: [{vars: {tone: brief, doc: file://doc.txt}}]\n")
    (row,) = load_suite(cfg).rows
    assert (row["__system"], row["__prompt"]) == ("Be brief.", "the document")


def test_tunepilot_keys_in_a_promptfoo_file(tmp_path):
    from evals.spec import build_spec

    cfg = tmp_path / "promptfooconfig.yaml"
    cfg.write_text("prompts: [hi]\nproviders: [openai:gpt-4o]\nmodels: [gemma-3-270m]\nout: runs/a\n"
                   "judge: {model: m, base_url: 'http://127.0.0.1:9/v1'}\ntests: [{vars: {}}]\n")
    spec = build_spec(cfg)
    assert [p.id for p in spec.providers] == ["gemma-3-270m"] and spec.judge.model == "m"
    assert spec.out == str((tmp_path / "runs" / "a").resolve())
