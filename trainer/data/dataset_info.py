"""LLaMA-Factory's `dataset_info.json` as a dataset registry: `dataset.path` may name its entries.

A registry is a JSON object whose keys are dataset names and whose values describe one file each:
`file_name` (relative to the registry's folder), `formatting` (`alpaca`, the default, or `sharegpt` /
`openai`), `columns` (which row fields hold the prompt, query, response, history, system, messages,
chosen, rejected ...), `tags` (for sharegpt: which message keys hold the role and the content, and
which role values mean user / assistant / system) and `ranking` (a preference set of chosen/rejected
answers). Entries that point at a model hub (`hf_hub_url`, `ms_hub_url`, `om_hub_url`), a loading
script or cloud storage cannot be read offline; they fail with one line naming the entry and the fix.

`dataset.path = "identity,alpaca_en_demo"` names two entries. They are mixed the way LLaMA-Factory
mixes by default (`mix_strategy: concat`): every row of every entry, in the order listed, so each entry
contributes in proportion to its size. An entry's `num_samples` takes that many rows of it (a seeded
random choice, repeating the whole file when more are asked for than it has), as LLaMA-Factory does.

Each row is renamed into a layout tunepilot's readers already know (alpaca instruction/output,
sharegpt conversations with from/value turns, chosen/rejected, label), following LLaMA-Factory's reading
of each format: alpaca `prompt` and `query` are joined with one newline into the user turn, `history`
and `system` are read only where `columns` names them, sharegpt turns are renamed through the tags.
The rows then go through `trainer.data.formats` / `trainer.data.preference` like a file's, so kinds,
stages, tool calls and bad rows are judged alike. Row fields no column maps are named in a warning
(LLaMA-Factory ignores them too); entries with image, video or audio columns are refused by name.

This module registers itself in `trainer.data.formats.NAME_READERS` (trainer/data/__init__.py imports it),
so `read_dataset(names, dataset_dir=...)` reads names without `formats` importing this module.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from trainer.data.formats import DataError, LoadedData, read_rows
from tunepilot.core.text_encoding import UndecodableText, decode_text

REGISTRY_FILE = "dataset_info.json"
DEFAULT_DIR = "data"  # LLaMA-Factory's default dataset_dir

_DATA_SUFFIXES = {".json", ".jsonl", ".csv", ".tsv", ".parquet", ".arrow", ".txt"}
_HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url")
# Entry keys this reader understands; the rest are named in an error (see `_entry_problems`).
_ENTRY_KEYS = {"file_name", "formatting", "ranking", "columns", "tags", "num_samples", "split", "subset", "folder"}
_COLUMN_DEFAULTS = {"prompt": "instruction", "query": "input", "response": "output", "history": None,
                    "messages": "conversations", "system": None, "tools": None, "chosen": None, "rejected": None,
                    "kto_tag": None}
# The models tunepilot trains are text-only; an entry with media columns is refused as a whole.
_UNSUPPORTED_COLUMNS = {"images": "image inputs", "videos": "video inputs", "audios": "audio inputs"}
_TAG_DEFAULTS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
# The openai formatting is sharegpt with OpenAI's key names as its defaults.
_OPENAI_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                "system_tag": "system"}
_SAMPLE_SEED = 42


class DatasetInfoError(DataError):
    """A registry that cannot be read, or an entry that cannot be used; the message names it and the fix."""


@dataclass
class Entry:
    """One resolved registry entry: its name, its file and how its rows map onto tunepilot's."""

    name: str
    file: Path
    formatting: str = "alpaca"
    ranking: bool = False
    columns: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    num_samples: int | None = None

    def column(self, key: str) -> str | None:
        return self.columns.get(key, _COLUMN_DEFAULTS.get(key))

    def tag(self, key: str) -> str | None:
        defaults = {**_TAG_DEFAULTS, **_OPENAI_TAGS} if self.formatting == "openai" else _TAG_DEFAULTS
        return self.tags.get(key, defaults.get(key))


# ---------------------------------------------------------------- recognising names and finding the registry

def split_names(path: str) -> list[str]:
    return [part.strip() for part in str(path).split(",") if part.strip()]


def looks_like_names(path: str | Path | None) -> bool:
    """True when `path` reads as registry entry names (`identity,alpaca_en_demo`), not as a file path.

    A name has no folder separator and no data-file suffix, and is not an existing file.
    """
    if not path or (isinstance(path, Path) and path.exists()):
        return False
    text = str(path)
    if Path(text).expanduser().exists():
        return False
    names = split_names(text)
    return bool(names) and all("/" not in n and "\\" not in n and Path(n).suffix.lower() not in _DATA_SUFFIXES
                               and re.fullmatch(r"[\w.\-]+", n) for n in names)


def registry_candidates(dataset_dir: str | Path | None, base: str | Path | None = None) -> list[Path]:
    """Where a registry is looked for: `dataset_dir` (relative to `base`, then the current folder), else `data/` and `.`."""
    roots = [Path(base)] if base else []
    roots.append(Path.cwd())
    if dataset_dir:
        d = Path(dataset_dir).expanduser()
        dirs = [d] if d.is_absolute() else [root / d for root in roots]
    else:
        dirs = [root / DEFAULT_DIR for root in roots] + roots
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def find_registry(dataset_dir: str | Path | None = None, base: str | Path | None = None) -> Path | None:
    for d in registry_candidates(dataset_dir, base):
        if (d / REGISTRY_FILE).is_file():
            return d / REGISTRY_FILE
    return None


def load_registry(registry: Path) -> dict:
    try:
        text, _encoding = decode_text(registry.read_bytes())
        data = json.loads(text)
    except (OSError, UndecodableText) as exc:
        raise DatasetInfoError(f"cannot read {registry}: {exc}; fix the file or dataset.dataset_dir.") from None
    except json.JSONDecodeError as exc:
        raise DatasetInfoError(f"{registry} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix it.") from None
    if not isinstance(data, dict):
        raise DatasetInfoError(f"{registry} must be a JSON object of dataset names, got {type(data).__name__}.")
    return data


# ---------------------------------------------------------------- resolving entries

def resolve(path: str, dataset_dir: str | Path | None = None, base: str | Path | None = None) -> list[Entry]:
    """The registry entries `path` names, in order; DatasetInfoError names what cannot be used and why."""
    names = split_names(path)
    registry = find_registry(dataset_dir, base)
    if registry is None:
        where = ", ".join(str(d / REGISTRY_FILE) for d in registry_candidates(dataset_dir, base))
        raise DatasetInfoError(
            f"dataset.path {path!r} names datasets, but no {REGISTRY_FILE} was found (looked for {where}); "
            f"set dataset.dataset_dir to the folder that holds it, or set dataset.path to a data file.")
    info = load_registry(registry)
    return [_entry(name, info, registry) for name in names]


def _entry(name: str, info: dict, registry: Path) -> Entry:
    import difflib

    if name not in info:
        close = difflib.get_close_matches(name, list(info), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DatasetInfoError(f"dataset {name!r} is not an entry of {registry}; {hint}"
                               f"add it there, or set dataset.path to a data file.")
    spec = info[name]
    if not isinstance(spec, dict):
        raise DatasetInfoError(f"{registry}: entry {name!r} must be an object with file_name, got {type(spec).__name__}.")
    hub = [k for k in _HUB_KEYS if k in spec]
    if hub:
        raise DatasetInfoError(
            f"dataset {name!r} in {registry.name} is on a model hub ({hub[0]}: {spec[hub[0]]}), which cannot be read "
            f"offline; download it once, save the rows as a JSON/JSONL/CSV file in {registry.parent}, and give the "
            f"entry \"file_name\" instead of {hub[0]}.")
    for key in ("script_url", "cloud_file_name"):
        if key in spec:
            raise DatasetInfoError(f"dataset {name!r} in {registry.name} is loaded through {key} ({spec[key]}), which "
                                   f"tunepilot does not run; save the rows as a local file and give the entry \"file_name\".")
    if "file_name" not in spec:
        raise DatasetInfoError(f"dataset {name!r} in {registry.name} has no file_name; add the data file's name.")
    problems = _entry_problems(name, spec)
    if problems:
        raise DatasetInfoError(f"dataset {name!r} in {registry.name}: " + "; ".join(problems) + ".")
    file = (registry.parent / str(spec["file_name"])).resolve()
    if file.is_dir():
        raise DatasetInfoError(f"dataset {name!r}: {file} is a folder; tunepilot reads one JSON/JSONL/CSV file per entry.")
    if not file.is_file():
        raise DatasetInfoError(f"dataset {name!r}: its file {file} does not exist; fix file_name in {registry.name}.")
    return Entry(name=name, file=file, formatting=spec.get("formatting", "alpaca"), ranking=bool(spec.get("ranking", False)),
                 columns=dict(spec.get("columns") or {}), tags=dict(spec.get("tags") or {}),
                 num_samples=spec.get("num_samples"))


def _entry_problems(name: str, spec: dict) -> list[str]:
    problems = []
    unknown = sorted(set(spec) - _ENTRY_KEYS)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_ENTRY_KEYS))})")
    if spec.get("formatting", "alpaca") not in ("alpaca", "sharegpt", "openai"):
        problems.append(f"formatting {spec.get('formatting')!r} is not alpaca, sharegpt or openai")
    if spec.get("split", "train") != "train":
        problems.append(f"split {spec['split']!r}: a local file has only the train split; remove split")
    columns = spec.get("columns") or {}
    if not isinstance(columns, dict) or not isinstance(spec.get("tags") or {}, dict):
        problems.append("columns and tags must be objects")
        return problems
    for key, what in _UNSUPPORTED_COLUMNS.items():
        if columns.get(key):
            problems.append(f"its {key!r} column holds {what}, which tunepilot does not train on; "
                            f"remove the column from the entry to train on the text alone")
    unknown_columns = sorted(set(columns) - set(_COLUMN_DEFAULTS) - set(_UNSUPPORTED_COLUMNS))
    if unknown_columns:
        problems.append(f"unknown column key(s) {', '.join(unknown_columns)}")
    n = spec.get("num_samples")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        problems.append(f"num_samples must be a positive whole number, got {n!r}")
    return problems


# ---------------------------------------------------------------- rows

def _value(row: dict, key: str | None):
    return row.get(key) if key else None


def _present(value) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _canonical_turn(turn, entry: Entry) -> dict:
    """A sharegpt turn under this entry's tags -> tunepilot's sharegpt turn (`from` human/gpt/... + `value`)."""
    if not isinstance(turn, dict):
        return turn  # the reader names the bad turn
    names = {entry.tag("user_tag"): "human", entry.tag("assistant_tag"): "gpt", entry.tag("system_tag"): "system",
             entry.tag("observation_tag"): "observation", entry.tag("function_tag"): "function_call"}
    role_tag, content_tag = entry.tag("role_tag"), entry.tag("content_tag")
    out = {k: v for k, v in turn.items() if k not in (role_tag, content_tag)}
    role = turn.get(role_tag)
    out["from"] = names.get(role, role)
    out["value"] = turn.get(content_tag)
    return out


def remap(row: dict, entry: Entry) -> dict:
    """One row of an entry -> the layout tunepilot's readers know (`trainer.data.formats`, `trainer.data.preference`).

    Columns are renamed to alpaca's instruction/input/output/system/history or sharegpt's conversations
    with from/value turns (chosen, rejected, tools and media columns keep their meaning, so the readers
    accept or refuse them by name). LLaMA-Factory joins an alpaca prompt and query with one newline; that
    is done here, so the text trained on is the text LLaMA-Factory would train on.
    """
    extra = {key: _value(row, entry.column(key)) for key in ("system", "tools") if _present(_value(row, entry.column(key)))}
    label = _value(row, entry.column("kto_tag"))
    if entry.formatting in ("sharegpt", "openai"):
        turns = _value(row, entry.column("messages"))
        if isinstance(turns, list):
            turns = [_canonical_turn(t, entry) for t in turns]
            if turns and isinstance(turns[0], dict) and turns[0].get("from") == "system":
                extra.pop("system", None)  # a system turn wins over the system column, as in LLaMA-Factory
        out = {"conversations": turns, **extra}
        if entry.ranking:
            for key in ("chosen", "rejected"):
                out[key] = _canonical_turn(_value(row, entry.column(key)), entry)
        elif label is not None:
            out["label"] = label
        return out
    query = [str(v) for v in (_value(row, entry.column("prompt")), _value(row, entry.column("query"))) if _present(v)]
    prompt = "\n".join(query)
    out = {**extra}
    if _present(_value(row, entry.column("history"))):
        out["history"] = _value(row, entry.column("history"))
    if entry.ranking:
        return {"instruction": prompt, **out, "chosen": _value(row, entry.column("chosen")),
                "rejected": _value(row, entry.column("rejected"))}
    response = _value(row, entry.column("response"))
    if label is not None:
        return {"prompt": prompt, "completion": response, "label": label, **out}
    if "response" not in entry.columns and response is None and "history" not in out and "system" not in out:
        # A pre-training entry (columns {"prompt": "text"}): the prompt column is the document.
        return {"text": prompt}
    return {"instruction": prompt, "output": response, **out}


# ---------------------------------------------------------------- reading

def _sample(rows: list, n: int | None) -> list:
    """`num_samples` rows, as LLaMA-Factory picks them: a seeded random choice, the whole set repeated when n is larger."""
    if n is None or n == len(rows) or not rows:
        return rows
    rng = random.Random(_SAMPLE_SEED)
    if n < len(rows):
        return [rows[i] for i in sorted(rng.sample(range(len(rows)), n))]
    return rows * (n // len(rows)) + [rows[i] for i in sorted(rng.sample(range(len(rows)), n % len(rows)))]


def read_named(path: str, fmt: str = "auto", stage: str | None = "sft", dataset_dir: str | Path | None = None,
               base: str | Path | None = None) -> LoadedData:
    """The rows of every entry `path` names, remapped and concatenated in order (LLaMA-Factory's concat mix).

    Each entry goes through the same reader as a file (`trainer.data.formats.loaded_from_rows`), so kinds,
    stages, bad rows and warnings are judged alike; errors and warnings name the entry they come from
    (line numbers are within that entry's file). An explicit `fmt` is refused: each entry's formatting
    comes from the registry.
    """
    from trainer.data.formats import Row, loaded_from_rows

    if fmt not in ("auto", None, ""):
        raise DatasetInfoError(f"dataset.format {fmt!r} cannot be combined with dataset names ({path}); each entry's "
                               f"formatting comes from {REGISTRY_FILE}, so set dataset.format to auto.")
    entries = resolve(path, dataset_dir, base)
    merged: LoadedData | None = None
    for entry in entries:
        raw, encoding, kind = read_rows(entry.file)
        rows = [r if r.data is None else Row(r.line, remap(r.data, entry)) for r in _sample(raw, entry.num_samples)]
        try:
            one = loaded_from_rows(rows, entry.file, encoding, kind, "auto", stage)
        except DataError as exc:
            raise DatasetInfoError(f"dataset {entry.name!r} ({entry.file.name}): {exc}", getattr(exc, "problems", [])) from None
        one.errors = [{**e, "message": f"{entry.name}: {e['message']}"} for e in one.errors]
        one.warnings = [f"{entry.name}: {w}" for w in one.warnings]
        one.fields = _original_fields(entry, one.fields)
        unread = _unread_fields(entry, raw)
        if unread:
            one.fields.update({f"{entry.name}.{k}": "not read (the entry's columns do not map it)" for k in unread})
            one.warnings.append(f"{entry.name}: the rows' field(s) {', '.join(unread)} are not read, because the entry's "
                                f"columns in {REGISTRY_FILE} do not map them (LLaMA-Factory ignores them too); add them "
                                f"to \"columns\" to train on them.")
        if merged is None:
            merged = one
            continue
        if _family(one.kind) != _family(merged.kind):
            raise DatasetInfoError(f"{path}: dataset {entry.name!r} holds {one.kind} rows but the entries before it hold "
                                   f"{merged.kind} rows; one training stage reads one kind, so list them separately.")
        if one.row_format != merged.row_format and merged.row_format != "mixed":
            merged.row_format = "mixed"
        if one.kind == "tools":
            merged.kind = "tools"
        merged.examples += one.examples
        merged.lines += one.lines
        merged.errors += one.errors
        merged.warnings += one.warnings
        merged.fields.update(one.fields)
        merged.total_rows += one.total_rows
    assert merged is not None  # resolve() returns at least one entry
    merged.path = find_registry(dataset_dir, base) or merged.path
    return merged


def _unread_fields(entry: Entry, rows: list, limit: int = 200) -> list[str]:
    """Fields of the rows that no column of the entry maps (so the reader never sees them)."""
    keys = ["messages", "system", "tools", "kto_tag"] if entry.formatting in ("sharegpt", "openai") else \
        ["prompt", "query", "response", "history", "system", "tools", "kto_tag"]
    if entry.ranking:
        keys += ["chosen", "rejected"]
    mapped = {entry.column(k) for k in keys} - {None}
    seen: set[str] = set()
    for row in rows[:limit]:
        if row.data is not None:
            seen |= set(row.data)
    return sorted(seen - mapped)


def _original_fields(entry: Entry, fields: dict) -> dict:
    """The reader's field descriptions under the entry's own column names (`greet.question`, not `instruction`)."""
    if entry.formatting in ("sharegpt", "openai"):
        names = {"conversations": f"{entry.column('messages')} (role tag {entry.tag('role_tag')!r}, "
                                  f"content tag {entry.tag('content_tag')!r})"}
    else:
        prompt = entry.column("prompt")
        query = entry.column("query")
        names = {"instruction": f"{prompt} + {query}" if query else prompt, "output": entry.column("response"),
                 "text": prompt, "prompt": prompt, "completion": entry.column("response")}
    for key in ("system", "history", "chosen", "rejected", "tools"):
        names[key] = entry.column(key) or key
    names["label"] = entry.column("kto_tag") or "label"
    out = {}
    for key, meaning in fields.items():
        head, dot, rest = key.partition("[]")
        if head == "conversations" and not dot:
            tags = [(entry.tag(t), role) for t, role in (("user_tag", "user"), ("assistant_tag", "assistant"),
                    ("system_tag", "system"), ("function_tag", "assistant tool call"), ("observation_tag", "tool result"))]
            meaning = "the conversation: " + ", ".join(f"{tag} -> {role}" for tag, role in tags if tag)
        out[f"{entry.name}.{names.get(head, head)}{dot}{rest}"] = meaning
    return out


def _family(kind: str) -> str:
    return "sft" if kind == "tools" else kind


def read_named_preference(path: str, dataset_dir: str | Path | None = None, base: str | Path | None = None):
    """Ranking (or KTO) entries as `trainer.data.preference.PreferenceData`, for the preference stages' loader.

    The same registry reading as `read_named`; the rows are TRL's conversational shapes. Raises DataError
    when the entries are not preference or KTO data.
    """
    from trainer.data.preference import PreferenceData

    loaded = read_named(path, "auto", stage=None, dataset_dir=dataset_dir, base=base)
    if loaded.kind not in ("preference", "kto"):
        raise DatasetInfoError(f"{path}: the named datasets hold {loaded.kind} rows, not preference pairs or KTO rows; "
                               f"mark pair sets with \"ranking\": true in {REGISTRY_FILE}, or use method.stage = \"sft\".")
    return PreferenceData(path=loaded.path, encoding=loaded.encoding, file_format=loaded.file_format, kind=loaded.kind,
                          layout="dataset_info", rows=loaded.examples, lines=loaded.lines, errors=loaded.errors,
                          warnings=[{"line": None, "message": w} for w in loaded.warnings], total_rows=loaded.total_rows)


def _register() -> None:
    from trainer.data import formats

    if not any(reader is read_named for _accepts, reader in formats.NAME_READERS):
        formats.NAME_READERS.append((looks_like_names, read_named))


_register()
