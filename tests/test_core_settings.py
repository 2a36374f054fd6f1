"""The environment is read in one place (tunepilot.core.settings): defaults, validation, and the OpenAI endpoint."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from tunepilot.core import settings as core_settings
from tunepilot.core.errors import UserError
from tunepilot.core.settings import (
    DEFAULT_OPENAI_TIMEOUT_S,
    SettingsError,
    openai_endpoint,
    settings,
    variable_names,
)

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def clean_env(monkeypatch):
    """No tunepilot variable set, so each test states exactly the environment it needs."""
    for name in variable_names():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(clean_env):
    s = settings()
    assert s.home == ".tunepilot"
    assert s.embeddings == "" and s.reranker == "" and s.chroma_url is None
    assert s.max_file_mb == 20.0
    assert s.openai_timeout == DEFAULT_OPENAI_TIMEOUT_S and s.openai_structured_method == "json_schema"
    assert s.max_running_jobs == 1
    assert s.api_key is None and s.owner_key is None and s.promptlayer_api_key is None
    assert not s.hub_offline


def test_server_settings_defaults_come_from_core_settings(clean_env):
    from trainer.server.settings import MB, ServerSettings

    assert ServerSettings.from_env() == ServerSettings()
    clean_env.setenv("TUNEPILOT_SERVE_MAX_BODY_MB", "2")
    clean_env.setenv("TUNEPILOT_SERVE_MEMORY_GB", "0.5")
    clean_env.setenv("TUNEPILOT_API_KEY", "k1")
    clean_env.setenv("TUNEPILOT_OWNER_KEY", "")  # empty means unset
    server = ServerSettings.from_env()
    assert server.max_body_bytes == 2 * MB and server.memory_budget_bytes == 512 * MB
    assert server.api_key == "k1" and server.owner_key is None


def test_every_variable_is_described_and_documented(clean_env):
    section = README.read_text(encoding="utf-8").split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"\b(?:TUNEPILOT|OPENAI|PROMPTLAYER|HF_HUB)_[A-Z_]+", section))
    for field in core_settings.Settings.model_fields.values():
        assert field.description, field.alias
        if field.alias.startswith("TUNEPILOT_"):
            assert field.alias in documented, f"{field.alias} is missing from the README's Settings table"


@pytest.mark.parametrize("name, value", [
    ("TUNEPILOT_SERVE_MAX_BODY_MB", "lots"),
    ("TUNEPILOT_MAX_FILE_MB", "-3"),
    ("TUNEPILOT_MAX_RUNNING_JOBS", "two"),
    ("TUNEPILOT_OPENAI_TIMEOUT", "soon"),
    ("TUNEPILOT_OPENAI_STRUCTURED_METHOD", "xml"),
])
def test_a_bad_value_is_a_one_line_user_error_naming_the_variable(clean_env, name, value):
    clean_env.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        settings()
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
    assert "\n" not in message
    assert message.startswith(f"{name}={value!r} ") and "unset it" in message
    assert caught.value.field == name


def test_a_bad_value_stops_the_workspace_with_the_same_message(clean_env):
    from tunepilot.core import workspace

    clean_env.setenv("TUNEPILOT_MAX_RUNNING_JOBS", "0")
    with pytest.raises(SettingsError, match="TUNEPILOT_MAX_RUNNING_JOBS='0'"):
        workspace.home()


def test_monkeypatched_environment_is_seen_and_parsed_once_per_environment(clean_env, tmp_path):
    clean_env.setenv("TUNEPILOT_HOME", str(tmp_path / "a"))
    first = settings()
    assert first.home == str(tmp_path / "a")
    assert settings() is first  # same environment: the parsed settings are reused
    clean_env.setenv("TUNEPILOT_HOME", str(tmp_path / "b"))
    assert settings().home == str(tmp_path / "b")
    clean_env.setenv("TUNEPILOT_HOME", str(tmp_path / "a"))
    assert settings().home == str(tmp_path / "a")
    clean_env.setenv("TUNEPILOT_HOME", "")
    assert settings().home == ".tunepilot"


def test_values_are_normalised(clean_env):
    clean_env.setenv("TUNEPILOT_RERANKER", "  /models/ce  ")
    clean_env.setenv("TUNEPILOT_CHROMA_URL", "   ")
    clean_env.setenv("HF_HUB_OFFLINE", "true")  # what huggingface_hub itself accepts
    s = settings()
    assert s.reranker == "/models/ce" and s.chroma_url is None and s.hub_offline
    clean_env.setenv("HF_HUB_OFFLINE", "0")
    assert not settings().hub_offline


def test_openai_precedence_explicit_then_tunepilot_then_openai(clean_env):
    assert openai_endpoint() == core_settings.OpenAIEndpoint(None, None, None, DEFAULT_OPENAI_TIMEOUT_S)
    clean_env.setenv("OPENAI_BASE_URL", "http://sdk/v1")
    clean_env.setenv("OPENAI_API_KEY", "sdk-key")
    clean_env.setenv("OPENAI_MODEL", "sdk-model")
    assert openai_endpoint() == core_settings.OpenAIEndpoint("http://sdk/v1", "sdk-model", "sdk-key",
                                                             DEFAULT_OPENAI_TIMEOUT_S)
    clean_env.setenv("TUNEPILOT_OPENAI_BASE_URL", "http://tp/v1")
    clean_env.setenv("TUNEPILOT_OPENAI_API_KEY", "tp-key")
    clean_env.setenv("TUNEPILOT_OPENAI_MODEL", "tp-model")
    clean_env.setenv("TUNEPILOT_OPENAI_TIMEOUT", "7")
    assert openai_endpoint() == core_settings.OpenAIEndpoint("http://tp/v1", "tp-model", "tp-key", 7.0)
    assert openai_endpoint(base_url="http://x/v1", model="m", api_key="k", timeout=2) == \
        core_settings.OpenAIEndpoint("http://x/v1", "m", "k", 2.0)


def test_engine_provider_and_judge_resolve_the_endpoint_the_same_way(clean_env):
    from assistant.engines.openai_engine import OpenAIEngine
    from evals.providers import OpenAIProvider
    from evals.scorers.judge import LlmJudge
    from evals.spec import JudgeSpec, ProviderSpec

    clean_env.setenv("OPENAI_BASE_URL", "http://sdk/v1")
    clean_env.setenv("OPENAI_MODEL", "sdk-model")
    clean_env.setenv("TUNEPILOT_OPENAI_TIMEOUT", "9")
    engine = OpenAIEngine()
    provider = OpenAIProvider(ProviderSpec(id="openai:gpt"))
    judge = LlmJudge()  # no judge: section: the environment, OPENAI_* included
    for part in (engine, provider, judge):
        assert part.base_url == "http://sdk/v1"
    assert engine.model == "sdk-model" and judge.model == "sdk-model"
    assert provider.model == "gpt"  # the id names the model, not the environment
    assert engine.timeout == provider.timeout_s == judge.timeout_s == 9.0
    assert judge.unavailable_reason() is None

    # What the eval config writes wins over the environment, the timeout included.
    configured = LlmJudge(settings=SimpleNamespace(judge=JudgeSpec(base_url="http://judge/v1", model="j",
                                                                   timeout_s=3)))
    assert (configured.base_url, configured.model, configured.timeout_s) == ("http://judge/v1", "j", 3.0)
    assert OpenAIProvider(ProviderSpec(id="openai:gpt", timeout_s=4)).timeout_s == 4.0
    # A judge: section that leaves the timeout out still gets the environment's.
    assert LlmJudge(settings=SimpleNamespace(judge=JudgeSpec(model="j"))).timeout_s == 9.0
