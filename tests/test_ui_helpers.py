"""Unit tests for the Streamlit app's helpers: locale catalogs, language detection, tables, uploads."""

from __future__ import annotations

import json
import re

import pytest

from tunepilot.ui.widgets import i18n
from tunepilot.ui.widgets.jobs_view import (
    jobs_frame,
    log_frame,
    metrics_frame,
    sample_events,
)
from tunepilot.ui.widgets.uploads import safe_name, save_upload

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def test_both_locales_have_the_same_keys_and_placeholders():
    en, zh = i18n.catalog("en"), i18n.catalog("zh")
    assert set(en) == set(zh)
    for key in en:
        assert set(PLACEHOLDER.findall(en[key])) == set(PLACEHOLDER.findall(zh[key])), key
        assert zh[key].strip(), key


def test_every_key_used_in_the_code_exists():
    from pathlib import Path

    root = Path(i18n.__file__).resolve().parent.parent
    used = set()
    for path in [root / "app.py", *(root / "pages").glob("*.py"), *(root / "widgets").glob("*.py")]:
        used |= set(re.findall(r"\bt\(\s*\"([a-z_]+\.[a-z_.]+)\"", path.read_text(encoding="utf-8")))
    missing = sorted(k for k in used if k not in i18n.catalog("en"))
    assert not missing
    assert len(used) > 50


def test_chinese_catalog_is_really_chinese():
    zh = i18n.catalog("zh")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh["nav.chat"] + zh["card.launch"] + zh["evals.bad_type"])


@pytest.mark.parametrize("tag, expected", [
    ("zh-CN", "zh"), ("zh_TW", "zh"), ("en-US", "en"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
    ("fr-FR,en;q=0.8", "en"), ("de-DE", None), ("", None), (None, None),
])
def test_lang_from_tag(tag, expected):
    assert i18n.lang_from_tag(tag) == expected


def test_metrics_frame_keeps_only_metrics_in_step_order():
    events = [
        {"type": "message", "message": "started", "created_at": 1, "level": "info", "data": {}},
        {"type": "metrics", "data": {"step": 2, "loss": 1.5, "learning_rate": 1e-4}},
        {"type": "metrics", "data": {"step": 1, "loss": 2.0, "learning_rate": 2e-4}},
        {"type": "sample", "data": {"step": 2, "prompt": "hi", "completion": "hello"}},
    ]
    frame = metrics_frame(events)
    assert list(frame["step"]) == [1, 2] and list(frame["loss"]) == [2.0, 1.5]
    assert len(log_frame(events)) == 4
    assert [e["data"]["completion"] for e in sample_events(events)] == ["hello"]
    assert metrics_frame([]).empty


def test_jobs_frame_newest_first():
    frame = jobs_frame([{"id": "a", "status": "succeeded", "created_at": 1}, {"id": "b", "status": "running", "created_at": 5}])
    assert list(frame["id"]) == ["b", "a"]


def test_save_upload_is_idempotent_and_safe(tunepilot_home):
    data = "问题,答案\n一加一,二\n".encode("gbk")
    first = save_upload("../../etc/测试 集.csv", data, area="evals")
    second = save_upload("../../etc/测试 集.csv", data, area="evals")
    assert first == second and first.read_bytes() == data
    assert first.is_relative_to(tunepilot_home / "uploads" / "evals")
    assert safe_name("a/b\\c d.json") == "c_d.json"


def test_locale_files_are_valid_utf8_json():
    for lang in i18n.LANGUAGES:
        json.loads((i18n.LOCALES_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def test_request_findings_survive_revalidation():
    from tunepilot.ui.widgets.config_card import with_request_findings

    conflict = {"rule_id": "request.conflicting-methods", "severity": "error", "field": "method.type",
                "message": "both LoRA and full", "source": "en/lora.md", "heading": "Choosing a method"}
    rule = {"rule_id": "lr-range", "severity": "warning", "field": "optimizer.learning_rate", "message": "high",
            "source": "en/hyperparameters.md", "heading": "Learning rate"}
    stale = {**rule, "message": "stale finding from the unedited config"}
    merged = with_request_findings({"errors": [], "warnings": [rule]}, {"errors": [conflict], "warnings": [stale]})
    assert merged["errors"] == [conflict]
    assert merged["warnings"] == [rule]
