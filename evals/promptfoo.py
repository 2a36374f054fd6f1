"""Read a promptfoo config (`promptfooconfig.yaml`) into tunepilot eval rows with per-test assertions.

What is read, in promptfoo's meaning:
- `prompts`: inline strings, `file://x.txt` (prompts separated by a line `---`), `file://x.json` (a chat
  message list with at most one system and one user turn) or `{raw|id, label}` objects. Every prompt is
  run on every test, as promptfoo does, so rows = tests x prompts.
- `providers`: mapped to tunepilot models (`provider_mapping`): `openai:<model>` and `openai:chat:<model>`
  -> `openai:<model>` (config.apiBaseUrl -> base_url), `ollama:<model>` / `ollama:chat:<model>` ->
  `openai:<model>` on Ollama's OpenAI-compatible endpoint, `huggingface:text-generation:<id>` -> the
  model run locally with transformers, and tunepilot's own names (a folder, `ft:` ids, registered names)
  as they are. Others are named as unsupported. `--model` replaces the file's providers.
- `tests`: inline, or `file://` CSV / YAML / JSON / JSONL files (globs allowed), plus `defaultTest`;
  `vars` (lists expand into every combination), `assert`, `threshold`, `description`, `metadata`,
  `options.prefix/suffix`. CSV columns: variables, `__expected` / `__expected1..N` (assertion strings
  such as `icontains:bonjour` — parsed as assertions, never used as a reference answer),
  `__description`, `__metadata:<key>` (`<key>[]` splits on commas), `__prefix`, `__suffix`, `__threshold`.
- Prompt variables use promptfoo's Nunjucks syntax, rendered by Jinja2 (Nunjucks is its port) in a
  sandbox, with promptfoo's `load` and `dump` filters added; an undefined variable is an error.

Keys that are read but not applied (promptfoo options tunepilot has no equivalent for) come back as
notices, never silently dropped.
"""

from __future__ import annotations

import glob
import itertools
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from evals.errors import EvalError

PROMPTFOO_KEYS = {"prompts", "providers", "tests", "defaultTest", "description", "outputPath", "assertionTemplates",
                  "scenarios", "evaluateOptions", "sharing", "env", "tags", "derivedMetrics", "extensions", "nunjucksFilters",
                  "redteam", "writeLatestResults", "commandLineOptions", "metadata", "$schema", "targets"}
# Keys tunepilot's own eval config can add to a promptfoo file (judge, generation ...).
TUNEPILOT_KEYS = {"judge", "generation", "fail_under", "out", "limit", "device", "system", "models"}
OLLAMA_BASE_URL = "http://localhost:11434/v1"
ASSERTION_TYPES = ("equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any", "icontains-all",
                   "regex", "starts-with", "is-json", "contains-json", "similar", "llm-rubric", "latency", "levenshtein",
                   "assert-set")
UNSUPPORTED_ASSERTIONS = {
    "javascript": "JavaScript assertions run code in promptfoo's Node runtime, which tunepilot does not execute; "
                  "rewrite it as regex / contains / starts-with",
    "python": "Python assertions run arbitrary code, which tunepilot does not execute; rewrite it as regex / contains",
}
# promptfoo's assertion-string syntax: [not-]type[(threshold)][:value]
_ASSERT_STRING = re.compile(r"^(not-)?([a-z][a-z0-9-]*)(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$")
_STRING_ALIASES = {"fn": "javascript", "eval": "javascript", "grade": "llm-rubric"}


class _Yaml12Loader(yaml.SafeLoader):
    """YAML as promptfoo (js-yaml, YAML 1.2) reads it: only true/false are booleans, so `body: Yes` stays "Yes"."""


_Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)


def is_promptfoo_config(data: Any) -> bool:
    """A promptfoo file has prompts/tests/providers and no tunepilot `dataset:`."""
    return isinstance(data, dict) and "dataset" not in data and bool({"prompts", "tests"} & set(data))


@dataclass
class Suite:
    rows: list[dict]
    columns: list[str]
    providers: list[dict]
    mapping: list[dict] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    description: str | None = None


# ---------------------------------------------------------------- assertions

def parse_assertion_string(text: str, where: str) -> dict:
    """`icontains:bonjour`, `similar(0.8):Hello`, `is-json`, `fn:...` -> an assertion dict; plain text -> equals."""
    raw = str(text).strip()
    m = _ASSERT_STRING.match(raw)
    if m:
        negate, kind, threshold, value = m.groups()
        kind = _STRING_ALIASES.get(kind, kind)
        known = kind in ASSERTION_TYPES or kind in UNSUPPORTED_ASSERTIONS
        if known and (value is not None or kind in ("is-json", "contains-json")):
            out = {"type": ("not-" if negate else "") + kind, "source": where}
            if value is not None:
                out["value"] = value.strip() if kind not in ("equals",) else value
            if threshold is not None:
                out["threshold"] = float(threshold)
            return out
    if raw.startswith("file://"):
        return {"type": "file", "value": raw, "source": where}
    return {"type": "equals", "value": raw, "source": where}


def normalise_assertion(item: Any, where: str, templates: dict) -> dict:
    if isinstance(item, str):
        return parse_assertion_string(item, where)
    if not isinstance(item, dict):
        raise EvalError(f"{where}: an assertion must be a mapping with `type` (got {item!r}).")
    if "$ref" in item:
        ref = str(item["$ref"])
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith("#/assertionTemplates/") or name not in templates:
            raise EvalError(f"{where}: $ref {ref!r} names no entry of assertionTemplates; known: {', '.join(templates) or '(none)'}.")
        return normalise_assertion(templates[name], where, templates)
    if "type" not in item:
        raise EvalError(f"{where}: assertion {item!r} has no `type`.")
    out = {k: item[k] for k in ("type", "value", "threshold", "weight", "metric") if k in item}
    out["source"] = where
    if out["type"] == "assert-set":
        out["assert"] = [normalise_assertion(a, f"{where} > assert-set", templates) for a in item.get("assert") or []]
    ignored = sorted(set(item) - {"type", "value", "threshold", "weight", "metric", "assert", "source"})
    if ignored:
        out["ignored"] = ignored
    return out


# ---------------------------------------------------------------- templates (Nunjucks through Jinja)

def _value_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _load(value: Any) -> Any:
    """promptfoo's `load` filter: JSON text -> value."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise _TemplateValueError(f"`| load` needs JSON text, got {value[:60]!r}") from None


class _TemplateValueError(ValueError):
    pass


@lru_cache(maxsize=1)
def _environment():
    """Nunjucks is a port of Jinja2: promptfoo's variables, filters and tags render the same way in
    Jinja's sandbox (no attribute access to Python internals). Undefined variables are errors."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, finalize=_value_text, keep_trailing_newline=True)
    env.filters.update(load=_load, dump=lambda v: json.dumps(v, ensure_ascii=False))
    return env


def render(template: str, variables: dict, where: str) -> str:
    from jinja2 import TemplateError, UndefinedError

    try:
        return _environment().from_string(template).render(**variables)
    except UndefinedError as exc:
        raise EvalError(f"{where}: the template uses an undefined value ({exc.message}); "
                        f"vars: {', '.join(variables) or '(none)'}.") from None
    except (TemplateError, _TemplateValueError) as exc:
        raise EvalError(f"{where}: the template cannot be rendered: {exc}.") from None


# ---------------------------------------------------------------- loading

def _file_ref(value: str, base: Path) -> Path | None:
    if isinstance(value, str) and value.startswith("file://"):
        path = Path(value[len("file://"):]).expanduser()
        return path if path.is_absolute() else base / path
    return None


def _listed(data: dict, key: str, fix: str) -> list:
    """A required key that promptfoo allows as one item or a list, as a list."""
    items = data.get(key)
    if items is None:
        raise EvalError(f"The promptfoo config has no `{key}`; {fix}.")
    return items if isinstance(items, list) else [items]


def _prompts(data: dict, base: Path) -> list[dict]:
    items = _listed(data, "prompts", "add at least one prompt")
    out = []
    for i, item in enumerate(items):
        label = None
        if isinstance(item, dict):
            label = item.get("label")
            item = item.get("raw", item.get("id"))
        path = _file_ref(item, base)
        if path is None:
            out.append({"label": label or f"prompt {i + 1}", "user": str(item), "system": None})
            continue
        if not path.is_file():
            raise EvalError(f"prompts[{i}]: {path} does not exist.")
        text = path.read_text(encoding="utf-8-sig")
        if path.suffix in (".txt", ".md", ".j2", ".njk", ""):
            parts = [p.strip("\n") for p in re.split(r"^---\s*$", text, flags=re.MULTILINE) if p.strip()]
            out += [{"label": label or f"{path.name}#{j + 1}", "user": p, "system": None} for j, p in enumerate(parts)]
        elif path.suffix in (".json", ".yaml", ".yml"):
            out.append({"label": label or path.name, **_chat_prompt(yaml_load(text), f"prompts[{i}] ({path.name})")})
        else:
            raise EvalError(f"prompts[{i}]: {path.name} is a {path.suffix} prompt (code that builds prompts); tunepilot reads "
                            "text (.txt, prompts split by ---) and chat JSON/YAML prompts.")
    return out


def _chat_prompt(messages: Any, where: str) -> dict:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise EvalError(f"{where}: a chat prompt must be a list of {{role, content}} messages.")
    system = [m["content"] for m in messages if m.get("role") == "system"]
    user = [m["content"] for m in messages if m.get("role") == "user"]
    if len(system) > 1 or len(user) != 1 or len(messages) != len(system) + len(user):
        raise EvalError(f"{where}: only one system and one user message are supported (multi-turn chat prompts are not).")
    return {"user": str(user[0]), "system": str(system[0]) if system else None}


def provider_mapping(item: Any, index: int) -> dict:
    """One promptfoo provider -> {"promptfoo", "tunepilot": ProviderSpec dict | None, "how", "not_applied"}."""
    config = {}
    label = None
    if isinstance(item, dict):
        if "id" not in item and len(item) == 1:  # {"openai:gpt-4o": {config...}}
            pid, opts = next(iter(item.items()))
            item = {"id": pid, **(opts or {})}
        config = dict(item.get("config") or {})
        label = item.get("label")
        pid = str(item.get("id", ""))
    else:
        pid = str(item)
    out = {"promptfoo": pid, "tunepilot": None, "how": "", "not_applied": []}
    spec: dict = {"id": pid}
    if pid.startswith(("openai:chat:", "openai:")) and not pid.startswith(("openai:embedding", "openai:image", "openai:assistant")):
        model = pid.split(":", 2)[-1] if pid.startswith("openai:chat:") else pid.split(":", 1)[1]
        spec = {"id": f"openai:{model}"}
        for key, target in (("apiBaseUrl", "base_url"), ("apiHost", "base_url"), ("apiKey", "api_key")):
            if config.get(key):
                spec[target] = config.pop(key) if key != "apiHost" else f"https://{config.pop(key)}/v1"
        out["how"] = "OpenAI-compatible endpoint (TUNEPILOT_OPENAI_* settings unless the config names one)"
    elif pid.startswith("ollama:"):
        model = pid.split(":", 2)[-1] if pid.startswith("ollama:chat:") else pid.split(":", 1)[1]
        spec = {"id": f"openai:{model}", "base_url": OLLAMA_BASE_URL}
        out["how"] = f"Ollama's OpenAI-compatible endpoint {OLLAMA_BASE_URL}"
    elif pid.startswith("huggingface:text-generation:"):
        spec = {"id": pid.split(":", 2)[2]}
        out["how"] = "run locally with transformers instead of the Hugging Face Inference API (offline: a local copy is needed)"
    elif pid.startswith("ft:") or ":" not in pid:
        out["how"] = "a tunepilot model name (built-in, registered, a folder or an ft: id)"
    else:
        out["how"] = ("not supported: tunepilot runs local models and OpenAI-compatible endpoints (openai:, ollama:, "
                      "huggingface:text-generation:); pass --model to choose one")
        return out
    if label:
        spec["label"] = label
    out["not_applied"] = sorted(config)
    out["tunepilot"] = spec
    return out


def _load_tests(data: dict, base: Path, notices: list[str]) -> list[dict]:
    items = _listed(data, "tests", "add tests inline or as file://tests.csv")
    tests = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            path = _file_ref(item, base)
            if path is None:
                raise EvalError(f"tests[{i}]: {item!r} is neither a test nor a file:// path.")
            matches = sorted(glob.glob(str(path))) if any(c in str(path) for c in "*?[") else [str(path)]
            if not matches or not Path(matches[0]).is_file():
                raise EvalError(f"tests[{i}]: {path} does not exist.")
            for match in matches:
                tests += _tests_from_file(Path(match), notices)
        elif isinstance(item, dict):
            tests.append({**item, "_where": f"tests[{i}]"})
        else:
            raise EvalError(f"tests[{i}] must be a mapping or a file:// path, got {item!r}.")
    return tests


def _tests_from_file(path: Path, notices: list[str]) -> list[dict]:
    from evals.datasets import decode_bytes
    from tunepilot.core import tables

    text, _ = decode_bytes(path.read_bytes())
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data = yaml_load(text) or []
        rows = data if isinstance(data, list) else [data]
        return [{**r, "_where": f"{path.name}[{n}]"} for n, r in enumerate(rows)]
    if suffix in (".json", ".jsonl"):
        table = tables.parse_table(text, suffix[1:])
        if table.first_problem is not None and not table.single_object:
            raise EvalError(f"{path}: line {table.first_problem.line} is not a test object.")
        rows = [r.data for r in table.rows]
        if table.single_object and isinstance(rows[0], list):
            rows = rows[0]
        return [{**r, "_where": f"{path.name}[{n}]"} for n, r in enumerate(rows)]
    if suffix in (".csv", ".tsv"):
        table = tables.parse_table(text, suffix[1:])
        if table.first_problem is not None:
            raise EvalError(f"{path} line {table.first_problem.line}: more cells than the header names; quote values with commas.")
        return [_csv_test(r.data, f"{path.name} line {r.line}", notices) for r in table.rows]
    raise EvalError(f"{path.name}: tests files must be CSV, YAML, JSON or JSONL (got {path.suffix}).")


def _csv_test(row: dict, where: str, notices: list[str]) -> dict:
    test: dict = {"vars": {}, "assert": [], "metadata": {}, "_where": where}
    config: dict[str, dict] = {}
    for key, value in row.items():
        value = "" if value is None else str(value)
        if not key.startswith("__"):
            test["vars"][key] = value
        elif re.fullmatch(r"__expected\d*", key):
            if value.strip():
                test["assert"].append({**parse_assertion_string(value, f"{where} {key}"), "_column": key})
        elif key == "__description":
            test["description"] = value
        elif key.startswith("__metadata:"):
            name = key.split(":", 1)[1]
            if name.endswith("[]"):
                test["metadata"][name[:-2]] = [p.replace("\\,", ",").strip() for p in re.split(r"(?<!\\),", value) if p.strip()]
            else:
                test["metadata"][name] = value
        elif key in ("__prefix", "__suffix"):
            test.setdefault("options", {})[key[2:]] = value
        elif key == "__threshold" and value.strip():
            test["threshold"] = float(value)
        elif key.startswith("__config:"):
            _, column, option = key.split(":", 2)
            if value.strip():
                config.setdefault(column, {})[option] = float(value) if re.fullmatch(r"[\d.]+", value) else value
        elif key == "__metric":
            for a in test["assert"]:
                a["metric"] = value
        else:
            notice = f"CSV column {key} is not supported and was not used"
            if notice not in notices:
                notices.append(notice)
    for a in test["assert"]:  # __config:__expected:<key> applies to every assertion, __config:__expectedN:<key> to one
        column = a.pop("_column")
        a.update(config.get("__expected", {}))
        if column != "__expected":
            a.update(config.get(column, {}))
    return test


def load_suite(path: str | Path, data: dict | None = None) -> Suite:
    """The promptfoo file as tunepilot rows (one per test x prompt), providers and notices."""
    file = Path(path).expanduser()
    base = file.parent
    if data is None:
        data = yaml_load(file.read_text(encoding="utf-8-sig")) or {}
    notices: list[str] = []
    unknown = sorted(set(data) - PROMPTFOO_KEYS - TUNEPILOT_KEYS - {"providers"})
    if unknown:
        notices.append(f"promptfoo keys not supported and not applied: {', '.join(unknown)}")
    if data.get("outputPath"):
        notices.append(f"outputPath ({data['outputPath']}) is not written; the reports are results.jsonl, results.csv "
                       "and report.html in the run folder")
    for key in ("scenarios", "extensions", "derivedMetrics", "nunjucksFilters", "redteam"):
        if data.get(key):
            notices.append(f"promptfoo `{key}` is not supported and was not applied")
    templates = data.get("assertionTemplates") or {}
    prompts = _prompts(data, base)
    mapping = [provider_mapping(p, i) for i, p in enumerate(_as_list(data.get("providers") or data.get("targets")))]
    default = data.get("defaultTest") or {}
    if isinstance(default, str):
        ref = _file_ref(default, base)
        default = yaml_load(ref.read_text(encoding="utf-8")) if ref and ref.is_file() else {}
    rows = []
    for test in _load_tests(data, base, notices):
        where = test.pop("_where")
        known = {"vars", "assert", "description", "threshold", "metadata", "options", "providers"}
        extra = sorted(set(test) - known)
        if extra:
            notices.append(f"{where}: test keys not supported and not applied: {', '.join(extra)}")
        options = {**(default.get("options") or {}), **(test.get("options") or {})}
        for key in sorted(set(options) - {"prefix", "suffix", "provider"}):
            notices.append(f"{where}: options.{key} is not supported and was not applied")
        asserts = [normalise_assertion(a, where, templates) for a in (default.get("assert") or [])]
        asserts += [normalise_assertion(a, where, templates) for a in (test.get("assert") or [])]
        variables = {**(default.get("vars") or {}), **(test.get("vars") or {})}
        variables = {k: _var_value(v, base, where) for k, v in variables.items()}
        threshold = test.get("threshold", default.get("threshold"))
        for combo in _combinations(variables):
            for prompt in prompts:
                ctx = f"{where} ({prompt['label']})"
                user = options.get("prefix", "") + render(prompt["user"], combo, ctx) + options.get("suffix", "")
                rendered = [_render_assertion(a, combo, ctx) for a in asserts]
                rows.append({**{k: _value_text(v) for k, v in combo.items()}, "__prompt": user,
                             "__system": render(prompt["system"], combo, ctx) if prompt["system"] else "",
                             "__prompt_label": prompt["label"], "__test": where,
                             "__description": test.get("description") or "", "__asserts": rendered,
                             "__threshold": threshold, "__metadata": test.get("metadata") or {}})
    if not rows:
        raise EvalError(f"{file} has no tests; add tests inline or as file://tests.csv.")
    for item in mapping:
        if item["not_applied"]:
            notices.append(f"provider {item['promptfoo']}: config keys {', '.join(item['not_applied'])} are not applied "
                           "(use the eval config's `generation:` for temperature / max_new_tokens)")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return Suite(rows=rows, columns=columns, providers=[m["tunepilot"] for m in mapping if m["tunepilot"]],
                 mapping=mapping, notices=notices, description=data.get("description"))


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _var_value(value: Any, base: Path, where: str) -> Any:
    path = _file_ref(value, base) if isinstance(value, str) else None
    if path is None:
        return value
    if not path.is_file():
        raise EvalError(f"{where}: var file {path} does not exist.")
    if path.suffix.lower() not in (".txt", ".md", ".json", ".yaml", ".yml", ".csv", ""):
        raise EvalError(f"{where}: var file {path.name} ({path.suffix}) is not text; images and PDFs are not supported.")
    text = path.read_text(encoding="utf-8-sig")
    return yaml_load(text) if path.suffix.lower() in (".json", ".yaml", ".yml") else text


def _combinations(variables: dict) -> list[dict]:
    """promptfoo runs every combination of list-valued vars."""
    keys = list(variables)
    lists = [v if isinstance(v, list) else [v] for v in variables.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*lists)] if keys else [{}]


def _render_assertion(a: dict, variables: dict, where: str) -> dict:
    out = dict(a)
    if isinstance(out.get("value"), str) and "{{" in out["value"]:
        out["value"] = render(out["value"], variables, where)
    if "assert" in out:
        out["assert"] = [_render_assertion(x, variables, where) for x in out["assert"]]
    return out


def describe_mapping(mapping: list[dict], used: list[str] | None = None) -> list[str]:
    """One notice per promptfoo provider: what it became, or that --model replaced the file's providers."""
    lines = []
    for m in mapping:
        target = m["tunepilot"]["id"] if m["tunepilot"] else "not supported"
        if used is not None and (m["tunepilot"] is None or target not in used):
            lines.append(f"provider {m['promptfoo']} not used: --model replaced the file's providers")
        else:
            lines.append(f"provider {m['promptfoo']} -> {target} ({m['how']})")
    return lines


def spec_data(config: str | Path, data: dict) -> tuple[dict, list[str]]:
    """An EvalSpec dict for a promptfoo file, and the providers that cannot run (named)."""
    suite = load_suite(config, data=data)
    spec = {k: data[k] for k in TUNEPILOT_KEYS if k in data and k != "models"}
    if isinstance(spec.get("out"), str) and not Path(spec["out"]).expanduser().is_absolute():
        spec["out"] = str((Path(config).expanduser().parent / spec["out"]).resolve())  # as for tunepilot's own eval files
    spec.update(dataset=str(Path(config).expanduser().resolve()), promptfoo=str(Path(config).expanduser().resolve()),
                providers=data.get("models") or suite.providers, scorers=["asserts"])  # `models:` = tunepilot's own list
    unrunnable = [f"{m['promptfoo']}: {m['how']}" for m in suite.mapping if m["tunepilot"] is None]
    return spec, unrunnable


def promptfoo_dataset(config: str | Path, used_providers: list[str] | None = None):
    """The suite as an evals Dataset (the runner's input), its notices and provider mapping as notes;
    `used_providers` are the ids the run evaluates (the file's, or those of --model)."""
    from evals.datasets import Dataset

    suite = load_suite(config)
    return Dataset(rows=suite.rows, columns=suite.columns, encoding="utf-8", path=str(config), format="promptfoo",
                   notes=suite.notices + describe_mapping(suite.mapping, used_providers))


def assertion_columns(columns: list[str]) -> list[str]:
    """promptfoo's assertion columns in a tests CSV: `__expected`, `__expected1` ... (never reference answers)."""
    return [c for c in columns if re.fullmatch(r"__expected\d*", c or "")]


def as_assertion_dataset(dataset):
    """A plain `--dataset tests.csv` that uses promptfoo's CSV conventions: each row's `__expected*` cells become
    its assertions (scored by `asserts`), `__description` / `__metadata:*` / `__threshold` are read, and the
    remaining columns stay variables for the template."""
    from evals.datasets import Dataset

    notices: list[str] = []
    rows = []
    for i, row in enumerate(dataset.rows):
        test = _csv_test(row, f"{Path(dataset.path).name} row {i + 1}", notices)
        rows.append({**test["vars"], "__asserts": [normalise_assertion(a, test["_where"], {}) for a in test["assert"]],
                     "__threshold": test.get("threshold"), "__test": test["_where"],
                     "__description": test.get("description") or "", "__metadata": test["metadata"]})
    columns = list(dict.fromkeys(k for r in rows for k in r))
    note = (f"{', '.join(assertion_columns(dataset.columns))} hold promptfoo assertions (e.g. icontains:bonjour); "
            "they are scored by `asserts`, not used as reference answers")
    return Dataset(rows=rows, columns=columns, encoding=dataset.encoding, path=dataset.path, format=dataset.format,
                   skipped_empty_rows=dataset.skipped_empty_rows, notes=[*dataset.notes, note, *notices])
