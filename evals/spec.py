"""What an eval run does, as one validated object: `EvalSpec`, from a YAML file and/or CLI flags.

The YAML is in the spirit of promptfoo's config (providers, prompts with variables, assertions);
the CLI flags of `tunepilot eval run` cover the simple case without a file, and override the file's
values where both are given. Example:

    dataset: data/qa.csv           # relative paths are relative to this file
    input_column: question
    expected_column: answer
    template: "Answer briefly: {question}"
    system: You are a helpful assistant.
    providers:
      - gemma-3-270m
      - id: ft:gemma-3-270m:demo:job-1
        label: fine-tuned
      - id: openai:gpt-4o-mini
        base_url: http://127.0.0.1:8000/v1
    generation: {max_new_tokens: 64, batch_size: 16, temperature: 0}
    scorers:
      - exact
      - {name: rouge_l, weight: 2, threshold: 0.5}
      - {name: regex, params: {pattern: "^\\d+$"}}
    judge: {base_url: http://127.0.0.1:8000/v1, model: gpt-4o-mini}
    fail_under: {rouge_l: 0.3}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from evals.errors import EvalError
from tunepilot.core.settings import DEFAULT_OPENAI_TIMEOUT_S

DEFAULT_SCORERS_WITH_EXPECTED = ("exact", "icontains", "rouge_l", "bleu", "chrf", "latency")
DEFAULT_SCORERS_WITHOUT_EXPECTED = ("latency",)


class ProviderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="gemma-3-270m, a local folder, an ft: id, a registered name, or openai:<model>.")
    label: Optional[str] = Field(None, description="Name used in reports; defaults to the id.")
    base_url: Optional[str] = Field(None, description="OpenAI-compatible endpoint for openai: providers.")
    api_key: Optional[str] = Field(None, description="API key for openai: providers (prefer the env variable).")
    timeout_s: float = Field(DEFAULT_OPENAI_TIMEOUT_S, gt=0, description="Per-request timeout for openai: providers; else TUNEPILOT_OPENAI_TIMEOUT.")

    @property
    def name(self) -> str:
        return self.label or self.id


class ScorerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="A scorer name from evals.scorers.SCORERS.")
    weight: float = Field(1.0, ge=0, description="Weight in the row's overall score (bounded scorers only).")
    threshold: Optional[float] = Field(None, description="A row passes this scorer at >= threshold (<= for lower-is-better).")
    params: dict[str, Any] = Field(default_factory=dict, description="Scorer options, e.g. regex pattern, json schema, labels, rubric.")


class GenerationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(128, ge=1, description="Upper bound on generated tokens per row.")
    temperature: float = Field(0.0, ge=0, description="0 = greedy, reproducible (the default).")
    top_p: float = Field(1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list, description="Extra stop strings (end-of-turn is always a stop).")
    batch_size: int = Field(16, ge=1, description="Rows per batched generate call (local) or concurrent requests (openai).")


class JudgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: Optional[str] = Field(None, description="OpenAI-compatible endpoint; else TUNEPILOT_OPENAI_BASE_URL, then OPENAI_BASE_URL.")
    api_key: Optional[str] = Field(None, description="Else TUNEPILOT_OPENAI_API_KEY, then OPENAI_API_KEY.")
    model: Optional[str] = Field(None, description="Else TUNEPILOT_OPENAI_MODEL, then OPENAI_MODEL.")
    timeout_s: float = Field(DEFAULT_OPENAI_TIMEOUT_S, gt=0, description="Else TUNEPILOT_OPENAI_TIMEOUT.")


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="JSON, JSONL, CSV or TSV file.")
    input_column: Optional[str] = Field(None, description="Column holding the user input; guessed when omitted.")
    expected_column: Optional[str] = Field(None, description="Column holding the reference answer; guessed when omitted.")
    template: Optional[str] = Field(None, description="Prompt with {column} variables; default: the input column as-is.")
    system: Optional[str] = Field(None, description="System prompt (may use {column} variables too).")
    providers: list[ProviderSpec] = Field(default_factory=list, description="Models to evaluate, in report order.")
    scorers: list[ScorerSpec] = Field(default_factory=list, description="Scorers; defaults depend on whether there is an expected column.")
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    out: Optional[str] = Field(None, description="Run folder; default: a new folder under $TUNEPILOT_HOME/evals.")
    limit: Optional[int] = Field(None, ge=1, description="Only the first N rows (for a quick look).")
    fail_under: dict[str, float] = Field(default_factory=dict, description="SCORER (or SCORER@MODEL) -> minimum mean.")
    device: str = Field("auto", description="Device for local models.")
    tags: list[str] = Field(default_factory=list, description="Tags for PromptLayer logging.")
    promptfoo: Optional[str] = Field(None, description="The promptfoo config the rows and assertions come from (evals.promptfoo).")

    @field_validator("providers", mode="before")
    @classmethod
    def _providers_as_objects(cls, value):
        if isinstance(value, (str, dict)):
            value = [value]
        return [{"id": v} if isinstance(v, str) else v for v in (value or [])]

    @field_validator("scorers", mode="before")
    @classmethod
    def _scorers_as_objects(cls, value):
        if isinstance(value, (str, dict)):
            value = [value]
        out = []
        for v in value or []:
            if isinstance(v, str):
                out.append({"name": v})
            elif isinstance(v, dict) and len(v) == 1 and "name" not in v and isinstance(next(iter(v.values())), dict):
                # promptfoo-like shorthand: `- regex: {pattern: ...}`
                name, opts = next(iter(v.items()))
                opts = dict(opts)
                out.append({"name": name, **{k: opts.pop(k) for k in ("weight", "threshold") if k in opts}, "params": opts})
            else:
                out.append(v)
        return out

    @model_validator(mode="after")
    def _unique_labels(self):
        if not self.providers:
            raise ValueError("no models given; pass --model (e.g. gemma-3-270m) or list providers in the config")
        names = [p.name for p in self.providers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model(s) {', '.join(dupes)} listed twice; give each a distinct label")
        return self


def _format_validation_error(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}")
    return f"{source} is not a valid eval config: " + "; ".join(parts)


def parse_spec(data: dict, source: str = "eval config") -> EvalSpec:
    """A dict (from YAML or built from flags) -> EvalSpec; every problem in one EvalError."""
    if "models" in data and "providers" not in data:
        data = {**data, "providers": data["models"]}
        data.pop("models")
    try:
        return EvalSpec.model_validate(data)
    except ValidationError as exc:
        raise EvalError(_format_validation_error(exc, source)) from None


def load_spec_file(path: str | Path) -> dict:
    """Read an eval YAML file into a dict; dataset/out paths are made relative to the file's folder."""
    file = Path(path).expanduser()
    if not file.exists():
        raise EvalError(f"Eval config {file} does not exist; check the path.")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise EvalError(f"Eval config {file} is not valid YAML{where}; fix the syntax.") from None
    if not isinstance(data, dict):
        raise EvalError(f"Eval config {file} must be a mapping of keys (dataset, providers, scorers ...).")
    for key in ("dataset", "out"):
        if isinstance(data.get(key), str) and not Path(data[key]).expanduser().is_absolute():
            data[key] = str((file.parent / data[key]).resolve())
    return data


def parse_fail_under(items: list[str]) -> dict[str, float]:
    """`["rouge_l=0.5", "exact@ft:x=0.2"]` -> {"rouge_l": 0.5, "exact@ft:x": 0.2}."""
    out = {}
    for item in items or []:
        key, sep, value = item.rpartition("=")
        if not sep or not key.strip():
            raise EvalError(f"--fail-under {item!r} is not SCORER=VALUE; write e.g. --fail-under rouge_l=0.4.")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise EvalError(f"--fail-under {item!r}: {value!r} is not a number; write e.g. --fail-under rouge_l=0.4.") from None
    return out


def build_spec(config: str | Path | None = None, **flags) -> EvalSpec:
    """Merge a config file (optional) with CLI flags; flags that are None or empty leave the file's value."""
    data: dict = load_spec_file(config) if config else {}
    unrunnable: list[str] = []
    if config:
        from evals.promptfoo import is_promptfoo_config, spec_data

        if is_promptfoo_config(data):  # promptfooconfig.yaml: rows, providers and assertions from its own format
            from evals.promptfoo import yaml_load

            data = yaml_load(Path(config).expanduser().read_text(encoding="utf-8-sig"))  # YAML 1.2 booleans, as promptfoo
            data, unrunnable = spec_data(config, data)
    models = flags.pop("models", None)
    if models:
        data.pop("models", None)
        data["providers"] = list(models)
    elif unrunnable and not data.get("providers"):
        raise EvalError(f"None of the promptfoo providers can run in tunepilot ({'; '.join(unrunnable)}); "
                        "pass --model (e.g. gemma-3-270m or openai:<model>).")
    scorers = flags.pop("scorers", None)
    if scorers:
        data["scorers"] = list(scorers)
    if data.get("promptfoo") and "asserts" not in [s if isinstance(s, str) else s.get("name") for s in data.get("scorers", [])]:
        data["scorers"] = ["asserts", *data.get("scorers", [])]
    fail_under = flags.pop("fail_under", None)
    if fail_under:
        data["fail_under"] = {**data.get("fail_under", {}), **fail_under}
    generation = dict(data.get("generation") or {})
    for key in ("max_new_tokens", "batch_size", "temperature", "top_p"):
        value = flags.pop(key, None)
        if value is not None:
            generation[key] = value
    if generation:
        data["generation"] = generation
    for key, value in flags.items():
        if value is not None:
            data[key] = value
    if "dataset" not in data:
        raise EvalError("No dataset given; pass --dataset FILE or set `dataset:` in the config.")
    return parse_spec(data, source=str(config) if config else "the command line")
