"""Reading and writing training configs, with every problem reported at once: the one place that
turns config files into data and back (TOML, YAML, JSON), for the CLI, the UI, jobs, the server and
the diffusion (kohya) configs.

`load_config(path)` and `parse_config(data)` turn TOML/YAML/JSON into a `TrainConfig` or raise
`ConfigError` whose `.problems` lists *all* problems found in one pass: syntax errors with line and
column, wrong types, enum values (with the allowed ones), and unknown keys with a "did you mean"
that knows the names other tools use (`lr`, `num_epochs`, `micro_batch_size` ...).

The lenient variants (`parse_config_lenient`, `load_config_lenient`) also return the best config that
can be built from the valid parts, so the rules can run as well: `trainer.planning.findings.check_config`
reports schema problems and rule findings together. Writing (`dump_config`, `dumps_config`,
`write_data`) goes through one serialiser and replaces files atomically.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from trainer.planning.schema import TrainConfig
from tunepilot.core import atomic
from tunepilot.core.errors import UserError

# Names used by other trainers (HF TrainingArguments, axolotl, LLaMA-Factory, OpenAI) -> our keys.
ALIASES: dict[str, str] = {
    "lr": "optimizer.learning_rate",
    "learning_rate": "optimizer.learning_rate",
    "num_epochs": "training.epochs",
    "num_train_epochs": "training.epochs",
    "n_epochs": "training.epochs",
    "epoch": "training.epochs",
    "micro_batch_size": "training.batch_size",
    "per_device_train_batch_size": "training.batch_size",
    "train_batch_size": "training.batch_size",
    "bs": "training.batch_size",
    "gradient_accumulation": "training.gradient_accumulation_steps",
    "grad_accum": "training.gradient_accumulation_steps",
    "accumulation_steps": "training.gradient_accumulation_steps",
    "steps": "training.max_steps",
    "num_steps": "training.max_steps",
    "sequence_len": "dataset.max_seq_length",
    "max_length": "dataset.max_seq_length",
    "cutoff_len": "dataset.max_seq_length",
    "seq_len": "dataset.max_seq_length",
    "max_len": "dataset.max_seq_length",
    "sample_packing": "training.packing",
    "r": "method.lora_r",
    "rank": "method.lora_r",
    "lora_rank": "method.lora_r",
    "alpha": "method.lora_alpha",
    "adapter": "method.type",
    "finetuning_type": "method.type",
    "lora_target": "method.target_modules",
    "lora_target_modules": "method.target_modules",
    "optim": "optimizer.type",
    "optimizer": "optimizer.type",
    "scheduler": "optimizer.lr_scheduler",
    "lr_scheduler_type": "optimizer.lr_scheduler",
    "warmup": "optimizer.warmup_ratio",
    "warmup_steps": "optimizer.warmup_ratio",
    "model_name_or_path": "model.base_model",
    "model_name": "model.base_model",
    "base_model": "model.base_model",
    "torch_dtype": "model.dtype",
    "bf16": "model.dtype",
    "fp16": "model.dtype",
    "datasets": "dataset.path",
    "data_path": "dataset.path",
    "train_file": "dataset.path",
    "training_file": "dataset.path",
    "validation_file": "dataset.eval_path",
    "eval_file": "dataset.eval_path",
    "val_set_size": "dataset.val_split",
    "output": "saving.output_dir",
    "save_steps": "saving.save_every_n_steps",
    "merge": "saving.merge_after_training",
    "vram": "hardware.device_memory_gb",
    "gpu_memory": "hardware.device_memory_gb",
}


class ConfigError(UserError, ValueError):
    """A config that cannot be used; `.problems` lists every problem as {"loc", "message"}."""

    def __init__(self, problems: list[dict]):
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"{p['loc']}: {p['message']}" if p.get("loc") else p["message"] for p in self.problems)


# ---------------------------------------------------------------- the key index

def _sections() -> dict[str, type[BaseModel]]:
    return {name: field.annotation for name, field in TrainConfig.model_fields.items()}


def known_keys() -> list[str]:
    """Every dotted key the schema accepts, e.g. `optimizer.learning_rate`."""
    return [f"{section}.{key}" for section, model in _sections().items() for key in model.model_fields]


def suggest(key: str, section: str | None = None) -> str | None:
    """The most likely intended dotted key for an unknown `key` found in `section` (None = top level)."""
    keys = known_keys()
    lowered = key.strip().lower().replace("-", "_")
    if lowered in ALIASES:
        return ALIASES[lowered]
    if section is None and lowered in _sections():
        return lowered
    # The right key in the wrong section (e.g. `training.learning_rate`).
    same_name = [k for k in keys if k.split(".", 1)[1] == lowered]
    if same_name:
        return same_name[0]
    if section in _sections():
        local = [k.split(".", 1)[1] for k in keys if k.startswith(section + ".")]
        close = difflib.get_close_matches(lowered, local, n=1, cutoff=0.7)
        if close:
            return f"{section}.{close[0]}"
    leaves = {k.split(".", 1)[1]: k for k in keys}
    close = difflib.get_close_matches(lowered, list(leaves), n=1, cutoff=0.75)
    if close:
        return leaves[close[0]]
    if section is None:
        close = difflib.get_close_matches(lowered, list(_sections()), n=1, cutoff=0.7)
        if close:
            return close[0]
    return None


# ---------------------------------------------------------------- turning pydantic errors into problems

def _loc(parts: tuple) -> str:
    # Union members add their type name to the loc ("target_modules", "list[str]"); keep only the keys
    # the user wrote, plus list positions.
    keep: list[str] = []
    model: Any = TrainConfig
    for part in parts:
        if isinstance(part, int):
            keep.append(f"[{part}]")
            continue
        if isinstance(model, type) and issubclass(model, BaseModel):
            keep.append(str(part))
            field = model.model_fields.get(str(part))
            model = field.annotation if field is not None else None
        elif model is None and not keep:
            keep.append(str(part))
    return ".".join(keep).replace(".[", "[")


def _allowed(expected: str) -> list[str]:
    return re.findall(r"'([^']*)'", expected)


def _problem_from_error(err: dict) -> dict:
    loc = _loc(err["loc"])
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        parts = [p for p in err["loc"] if isinstance(p, str)]
        section = parts[0] if len(parts) > 1 else None
        key = parts[-1]
        hint = suggest(key, section)
        where = f"in [{section}]" if section else "at the top level"
        msg = f"unknown key {key!r} {where}"
        return {"loc": loc, "message": msg + (f"; did you mean {hint!r}?" if hint else f"; known keys: {', '.join(known_keys())}")}
    if kind in ("literal_error", "enum"):
        allowed = _allowed(err.get("ctx", {}).get("expected", ""))
        close = difflib.get_close_matches(str(value).lower(), allowed, n=1, cutoff=0.6)
        msg = f"{value!r} is not allowed; choose one of: {', '.join(allowed)}"
        return {"loc": loc, "message": msg + (f" (did you mean {close[0]!r}?)" if close else "")}
    if kind == "model_type":
        return {"loc": loc, "message": f"must be a table of keys (a [{loc}] section), got {type(value).__name__} {value!r}"}
    if kind == "dict_type" and not loc:
        return {"loc": "", "message": f"the config must be a table of sections, got {type(value).__name__}"}
    return {"loc": loc, "message": f"{err['msg'][0].lower()}{err['msg'][1:]} (got {value!r})"}


def _problems(exc: ValidationError) -> list[dict]:
    merged: dict[str, dict] = {}
    for err in exc.errors():
        problem = _problem_from_error(err)
        if problem["loc"] in merged and err["type"] not in ("extra_forbidden",):
            # One bad value that failed several union members: say it once, with the field's meaning.
            field_desc = _field_description(problem["loc"])
            merged[problem["loc"]]["message"] = f"invalid value {err.get('input')!r}; expected: {field_desc}"
            continue
        merged.setdefault(problem["loc"], problem)
    return list(merged.values())


def _field_description(loc: str) -> str:
    section, _, key = loc.partition(".")
    model = _sections().get(section)
    field = model.model_fields.get(key) if model else None
    return (field.description or "a valid value") if field else "a valid value"


# ---------------------------------------------------------------- parsing

def parse_config(data: Any) -> TrainConfig:
    """Validate plain data into a TrainConfig; ConfigError lists every problem."""
    config, problems = parse_config_lenient(data)
    if problems:
        raise ConfigError(problems)
    return config


def parse_config_lenient(data: Any) -> tuple[TrainConfig, list[dict]]:
    """Validate what can be validated: returns (config built from the valid parts, problems)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return TrainConfig(), [{"loc": "", "message": f"the config must be a table of sections, got {type(data).__name__}"}]
    try:
        return TrainConfig.model_validate(data), []
    except ValidationError as exc:
        problems = _problems(exc)
        return TrainConfig.model_validate(_without(data, exc)), problems


def _without(data: dict, exc: ValidationError) -> dict:
    """A copy of `data` with every offending entry removed, so defaults stand in for them."""
    import copy

    cleaned = copy.deepcopy(data)
    for err in exc.errors():
        _pop_path(cleaned, [p for p in err["loc"] if isinstance(p, str)])
    return cleaned


def _pop_path(data: dict, keys: list[str]) -> None:
    # Union member names ("list[str]") can trail the real keys: pop the deepest key that exists.
    node: Any = data
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            return
        if depth == len(keys) - 1 or not isinstance(node[key], dict):
            node.pop(key, None)
            return
        node = node[key]


# ---------------------------------------------------------------- files

def _syntax_problem(path: Path, fmt: str, exc: Exception) -> dict:
    if fmt == "yaml":
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if mark is not None:
            return {"loc": f"{path.name}:{mark.line + 1}:{mark.column + 1}",
                    "message": f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem}"}
        return {"loc": path.name, "message": f"YAML syntax error: {problem}"}
    if fmt == "json":
        return {"loc": f"{path.name}:{exc.lineno}:{exc.colno}",  # type: ignore[attr-defined]
                "message": f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"}  # type: ignore[attr-defined]
    text = str(exc)
    found = re.search(r"line (\d+), column (\d+)", text)
    reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", text) or "invalid TOML"
    if found:
        line, col = found.groups()
        return {"loc": f"{path.name}:{line}:{col}", "message": f"TOML syntax error at line {line}, column {col}: {reason}"}
    return {"loc": path.name, "message": f"TOML syntax error: {reason}"}


def file_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    return {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}.get(suffix, "")


def read_config_data(path: str | Path) -> dict:
    """Plain data from a TOML/YAML/JSON file; ConfigError with line and column on a syntax error."""
    import tomllib
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError([{"loc": str(p), "message": f"no such file: {p}"}])
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([{"loc": str(p), "message": f"cannot read {p}: {exc}"}]) from None
    fmt = file_format(p)
    attempts = [fmt] if fmt else ["toml", "yaml"]
    first_error: dict | None = None
    for kind in attempts:
        try:
            if kind == "toml":
                return tomllib.loads(text)
            if kind == "json":
                return json.loads(text)
            data = yaml.safe_load(text)
            return data if data is not None else {}
        except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
            first_error = first_error or _syntax_problem(p, kind, exc)
    raise ConfigError([first_error or {"loc": str(p), "message": "unreadable config"}])


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a config file; ConfigError lists every problem (syntax, types, keys)."""
    return parse_config(read_config_data(path))


def load_config_lenient(path: str | Path) -> tuple[TrainConfig | None, list[dict]]:
    """(config from the valid parts, problems); config is None when the file cannot be parsed at all."""
    try:
        data = read_config_data(path)
    except ConfigError as exc:
        return None, exc.problems
    return parse_config_lenient(data)


# ---------------------------------------------------------------- writing

def dumps_data(data: dict, fmt: str) -> str:
    """Plain data as TOML, YAML or JSON text: the one serialiser for training and diffusion configs and kohya's files."""
    import tomli_w
    import yaml

    if fmt == "toml":
        return tomli_w.dumps(data)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False)
    if fmt == "yaml":
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    raise ConfigError([{"loc": "", "message": f"unknown config format {fmt!r}; use toml, yaml or json"}])


def dumps_config(config: Any, fmt: str = "toml") -> str:
    """A config (anything with `to_dict()`: TrainConfig, DiffusionConfig) as TOML, YAML or JSON text."""
    return dumps_data(config.to_dict(), fmt)


def write_data(data: dict, path: str | Path) -> Path:
    """Write plain data as TOML (.toml), YAML (.yaml/.yml) or JSON (.json) by extension.

    The file is replaced atomically (tunepilot.core.atomic), so a job or a reader never sees half a config.
    """
    p = Path(path)
    fmt = file_format(p)
    if not fmt:
        raise ConfigError([{"loc": str(p), "message": "config files end in .toml, .yaml, .yml or .json"}])
    text = dumps_data(data, fmt)
    return atomic.write_text(p, text + "\n" if fmt == "json" else text)


def dump_config(config: Any, path: str | Path) -> Path:
    """Write a config (TrainConfig or DiffusionConfig) by extension: .toml, .yaml/.yml or .json."""
    return write_data(config.to_dict(), path)


def json_schema() -> dict:
    """JSON Schema (draft 2020-12) of the training config, with every key's description."""
    schema = TrainConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tunepilot training config"
    return schema
