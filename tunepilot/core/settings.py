"""Every environment variable tunepilot reads, in one pydantic-settings model, validated in one place.

`settings()` is the only way product code reads the environment. A bad value is a one-line
`SettingsError` (a `UserError`) naming the variable and the fix, raised wherever settings are first
needed, so every edge (CLI, UI, worker, server) shows it the same way. An empty variable counts as
unset, as it always has for these variables.

`openai_endpoint()` is the one answer to "which OpenAI-compatible endpoint?" for the assistant's
`openai` engine, `openai:` eval providers and the LLM judge: an explicit argument (an option or the
eval config) wins, then `TUNEPILOT_OPENAI_*`, then the OpenAI SDK's own `OPENAI_*`; the timeout
falls back to one default.

Not here on purpose: `RANK` (accelerate's, read where a launched process decides who writes) and
the environment copied into child processes (that is passing the environment on, not reading it).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tunepilot.core.errors import UserError

# The one default for every OpenAI-compatible call (the answer engine, eval providers, the judge).
# Long enough for a non-streamed generation from a CPU-only `tunepilot serve`, short enough that the
# assistant still falls back to its extractive engine within a minute when an endpoint hangs.
DEFAULT_OPENAI_TIMEOUT_S = 60.0

# huggingface_hub's own reading of HF_HUB_OFFLINE (constants._is_true), so our "is the hub offline?"
# checks agree with what the hub client will actually do.
_HUB_TRUE = {"1", "ON", "YES", "TRUE"}


class SettingsError(UserError, ValueError):
    """An environment variable has a value tunepilot cannot use."""

    code = "invalid_setting"


class Settings(BaseSettings):
    """The environment tunepilot reads; the field's alias is the variable's name."""

    # case_sensitive: the names are exactly the documented ones; env_ignore_empty: `VAR=` means unset;
    # extra="ignore": the rest of the environment is none of our business.
    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore")

    # --- workspace and models
    home: str = Field(".tunepilot", alias="TUNEPILOT_HOME", examples=["~/.tunepilot"],
                      description="The workspace folder: model cache, indexes, job DB, runs, eval reports "
                                  "(relative paths are taken from the current directory).")
    hf_hub_offline: str | None = Field(None, alias="HF_HUB_OFFLINE", examples=["1"],
                                          description="Hugging Face's offline switch; when true, hub ids fail fast "
                                                      "instead of trying the network.")

    # --- knowledge (retrieval)
    embeddings: str = Field("", alias="TUNEPILOT_EMBEDDINGS", examples=["/models/bge-small"],
                            description="A sentence-transformers folder for dense retrieval ('hash' for a test "
                                        "embedder); empty uses the offline MiniLM package.")
    reranker: str = Field("", alias="TUNEPILOT_RERANKER", examples=["/models/ms-marco-MiniLM-L-6-v2"],
                          description="A local cross-encoder folder; when set, search results are reranked.")
    chroma_url: str | None = Field(None, alias="TUNEPILOT_CHROMA_URL", examples=["http://127.0.0.1:8001"],
                                      description="A Chroma server shared by a team, instead of the local index.")
    max_file_mb: float = Field(20.0, gt=0, alias="TUNEPILOT_MAX_FILE_MB", examples=["20"],
                               description="Files larger than this many megabytes are skipped by ingest.")

    # --- the OpenAI-compatible endpoint (see openai_endpoint())
    openai_base_url: str | None = Field(None, alias="TUNEPILOT_OPENAI_BASE_URL",
                                           examples=["http://127.0.0.1:8000/v1"],
                                           description="OpenAI-compatible endpoint for the openai engine, "
                                                       "openai: eval providers and the LLM judge.")
    openai_model: str | None = Field(None, alias="TUNEPILOT_OPENAI_MODEL", examples=["gpt-4o-mini"],
                                        description="Model name at that endpoint.")
    openai_api_key: str | None = Field(None, alias="TUNEPILOT_OPENAI_API_KEY", examples=["sk-..."],
                                          description="API key for that endpoint (local servers ignore it).")
    openai_timeout: float = Field(DEFAULT_OPENAI_TIMEOUT_S, gt=0, alias="TUNEPILOT_OPENAI_TIMEOUT", examples=["60"],
                                  description="Seconds before an OpenAI-compatible call gives up (the assistant "
                                              "then falls back to its extractive engine).")
    openai_structured_method: Literal["json_schema", "function_calling", "json_mode"] = Field(
        "json_schema", alias="TUNEPILOT_OPENAI_STRUCTURED_METHOD", examples=["function_calling"],
        description="How the openai engine asks for structured output.")
    sdk_openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL", examples=["https://api.openai.com/v1"],
                                               description="The OpenAI SDK's variable; used when "
                                                           "TUNEPILOT_OPENAI_BASE_URL is unset.")
    sdk_openai_model: str | None = Field(None, alias="OPENAI_MODEL", examples=["gpt-4o-mini"],
                                            description="Used when TUNEPILOT_OPENAI_MODEL is unset.")
    sdk_openai_api_key: str | None = Field(None, alias="OPENAI_API_KEY", examples=["sk-..."],
                                              description="The OpenAI SDK's variable; used when "
                                                          "TUNEPILOT_OPENAI_API_KEY is unset.")

    # --- jobs
    max_running_jobs: int = Field(1, ge=1, alias="TUNEPILOT_MAX_RUNNING_JOBS", examples=["2"],
                                  description="Training jobs that run at once; the rest queue.")

    # --- the API server (`tunepilot serve`)
    api_key: str | None = Field(None, alias="TUNEPILOT_API_KEY", examples=["a-long-random-string"],
                                   description="When set, the server requires `Authorization: Bearer <key>`.")
    owner_key: str | None = Field(None, alias="TUNEPILOT_OWNER_KEY", examples=["another-long-random-string"],
                                     description="When keys are set, deleting a fine-tuned model needs this key.")
    serve_memory_gb: float | None = Field(None, ge=0, alias="TUNEPILOT_SERVE_MEMORY_GB", examples=["4"],
                                             description="Budget for loaded model weights (LRU eviction); "
                                                         "unset or 0 picks half the free memory.")
    serve_max_body_mb: float = Field(1.0, gt=0, alias="TUNEPILOT_SERVE_MAX_BODY_MB", examples=["1"],
                                     description="JSON bodies above this many megabytes are refused with 413.")
    serve_max_upload_mb: float = Field(100.0, gt=0, alias="TUNEPILOT_SERVE_MAX_UPLOAD_MB", examples=["100"],
                                       description="Largest file upload in megabytes.")
    serve_max_batch: int = Field(8, ge=1, alias="TUNEPILOT_SERVE_MAX_BATCH", examples=["8"],
                                 description="Rows per micro-batch of concurrent requests (1 turns batching off).")
    serve_default_max_tokens: int = Field(512, ge=1, alias="TUNEPILOT_SERVE_DEFAULT_MAX_TOKENS", examples=["512"],
                                          description="max_tokens when a request does not say.")

    # --- evals
    promptlayer_api_key: str | None = Field(None, alias="PROMPTLAYER_API_KEY", examples=["pl_..."],
                                               description="When set, eval generations and scores are logged to "
                                                           "PromptLayer; without it nothing leaves the machine.")

    @field_validator("embeddings", "reranker", mode="before")
    @classmethod
    def _strip(cls, value):
        # Both are folder paths pasted into a shell; stray spaces are never part of the name.
        return value.strip() if isinstance(value, str) else value

    @field_validator("chroma_url", mode="before")
    @classmethod
    def _strip_or_unset(cls, value):
        return (value.strip() or None) if isinstance(value, str) else value

    @property
    def hub_offline(self) -> bool:
        return (self.hf_hub_offline or "").strip().upper() in _HUB_TRUE


def variable_names() -> tuple[str, ...]:
    """Every environment variable `Settings` reads."""
    return _NAMES


_NAMES: tuple[str, ...] = tuple(field.alias for field in Settings.model_fields.values())

# Parsed settings per distinct environment. Tests (monkeypatch, per test) and embedding code change
# os.environ inside one process, so settings() must reflect the current environment on every call;
# reading ~25 variables is cheap, parsing and validating is not, so parse once per distinct tuple of
# values. Bounded: a test session sets a fresh TUNEPILOT_HOME per test.
_cache: dict[tuple[str | None, ...], Settings] = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 64


def _environment_key() -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in _NAMES)


def settings() -> Settings:
    """The settings for the current environment (validated; a bad value raises SettingsError)."""
    key = _environment_key()
    found = _cache.get(key)
    if found is not None:
        return found
    parsed = _parse()
    # Remember it only if the environment did not change while pydantic-settings read it.
    if _environment_key() == key:
        with _cache_lock:
            if len(_cache) >= _CACHE_SIZE:
                _cache.clear()
            _cache[key] = parsed
    return parsed


def _parse() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise _one_line_error(exc) from None


def _one_line_error(exc: ValidationError) -> SettingsError:
    errors = exc.errors()
    names = [str(e["loc"][0]) for e in errors if e.get("loc")]
    name = names[0] if names else "?"
    first = errors[0]
    field = next((f for f in Settings.model_fields.values() if f.alias == name), None)
    raw = os.environ.get(name, first.get("input"))
    if first["type"] in ("int_parsing", "int_from_float"):
        problem = "is not a whole number"
    elif first["type"] == "float_parsing":
        problem = "is not a number"
    else:
        problem = f"is not usable ({first['msg'][0].lower() + first['msg'][1:]})"
    example = field.examples[0] if field is not None and field.examples else None
    fix = f"set it to a value such as {example}" if example else "set it to a valid value"
    more = f" (also invalid: {', '.join(dict.fromkeys(names[1:]))})" if len(set(names)) > 1 else ""
    return SettingsError(f"{name}={raw!r} {problem}; {fix} or unset it.{more}", field=name)


@dataclass(frozen=True)
class OpenAIEndpoint:
    """Where an OpenAI-compatible call goes. `model` may be None: each caller has its own fallback."""

    base_url: str | None
    model: str | None
    api_key: str | None
    timeout: float


def openai_endpoint(base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                    timeout: float | None = None) -> OpenAIEndpoint:
    """The one precedence: explicit argument > TUNEPILOT_OPENAI_* > OPENAI_* (> DEFAULT_OPENAI_TIMEOUT_S)."""
    s = settings()
    return OpenAIEndpoint(
        base_url=base_url or s.openai_base_url or s.sdk_openai_base_url,
        model=model or s.openai_model or s.sdk_openai_model,
        api_key=api_key or s.openai_api_key or s.sdk_openai_api_key,
        timeout=float(timeout or s.openai_timeout),
    )
