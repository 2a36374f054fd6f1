"""Pre-flight data check, run before any compute (like OpenAI's fine-tuning file checks).

Reports the file's kind (sft / tools / text / preference / kto) and what each of its fields becomes,
then, with line numbers: rows that cannot be read or used (bad JSON, missing or empty fields, wrong
role order, bad weights, calls to tools the row does not list), a mix of kinds in one file, a kind the
chosen `method.stage` cannot train (naming the stage that can), unreplaced `{{placeholders}}`,
examples longer than `max_seq_length` and what truncation does to them, duplicate examples, overlap
between the training and eval files, token counts, and the number of optimizer steps the run will take.
Preference and KTO files are read by `trainer.data.preference`. Token counts are exact when a
tokenizer is given (an object, or a model name/folder to load one from), otherwise an approximation
that says so.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trainer.data.formats import (
    STAGES_FOR_KIND,
    DataError,
    format_problems,
    read_dataset,
    stage_problem,
)

_CJK = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_TRUNCATION = ("cut from the end (the first max_seq_length tokens are kept), so the tail of their "
               "assistant replies is not learned; an example with no assistant token left is dropped")
_TEXT_TRUNCATION = ("cut from the end (the first max_seq_length tokens are kept), so the rest of each such "
                    "document is not learned; split long documents into shorter ones or raise dataset.max_seq_length")


@dataclass
class DataReport:
    path: str
    kind: str | None = None  # sft | tools | text | preference | kto
    stage: str = "sft"  # the method.stage the file was checked for
    format: str | None = None
    fields: dict = field(default_factory=dict)  # field of the file -> what it becomes in training
    encoding: str | None = None
    file_format: str | None = None
    n_rows: int = 0
    n_examples: int = 0
    fatal: str | None = None  # the file as a whole cannot be used
    errors: list[dict] = field(default_factory=list)  # {"line", "message"}
    warnings: list[str] = field(default_factory=list)
    too_long: dict = field(default_factory=dict)
    duplicates: list[dict] = field(default_factory=list)  # {"line", "duplicate_of"}
    eval: dict | None = None
    tokens: dict = field(default_factory=dict)
    estimated_steps: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.fatal is None and not self.errors and (self.eval is None or not self.eval.get("errors"))

    def summary(self) -> str:
        """One line for error messages."""
        if self.fatal:
            return self.fatal
        if self.errors:
            return format_problems(Path(self.path), self.errors)
        if self.eval and self.eval.get("errors"):
            return "eval file: " + format_problems(Path(self.eval["path"]), self.eval["errors"])
        return f"{Path(self.path).name}: {self.n_examples} examples OK"

    def to_dict(self) -> dict:
        return {"ok": self.ok, **asdict(self)}


def _approx_tokens(text: str) -> int:
    """About one token per CJK character and per four other characters (typical for BPE vocabularies)."""
    cjk = len(_CJK.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 4)


def _load_tokenizer(tokenizer):
    if tokenizer is None or not isinstance(tokenizer, (str, Path)):
        return tokenizer
    from trainer.models import registry as models
    from trainer.models.generation import load_tokenizer

    return load_tokenizer(models.resolve(str(tokenizer)).base_path)


def _count(example: dict, tokenizer) -> tuple[int, int, int]:
    """(tokens, trained tokens, index of the first trained token) for one example."""
    if tokenizer is not None:
        from trainer.data.sft import encode_example

        ids, mask = encode_example(tokenizer, example)
        return len(ids), sum(mask), _first_target(mask)
    if "text" in example:
        n = _approx_tokens(example["text"]) + 2
        return n, n, 0
    from trainer.models.chat_format import plain_tool_messages

    messages = example["messages"]
    if example.get("tools") or any(m.get("tool_calls") or m["role"] == "tool" for m in messages):
        messages = plain_tool_messages(messages, example.get("tools"))  # the fallback rendering, as trained
    total, target, first = 1, 0, None
    for m in messages:
        n = _approx_tokens(m["content"]) + 4  # turn markers and role name
        if m["role"] == "assistant" and m.get("weight", 1) != 0:
            first = total + 3 if first is None else first
            target += n - 3
        total += n
    return total, target, first if first is not None else total


def _first_target(mask: list[int]) -> int:
    for i, m in enumerate(mask):
        if m:
            return i
    return len(mask)


def _key(example: dict) -> str:
    return json.dumps(example, ensure_ascii=False, sort_keys=True)


def _prompt_key(example: dict) -> str:
    if "text" in example:
        return example["text"].strip()
    return "\n".join(m["content"].strip() for m in example["messages"] if m["role"] != "assistant")


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def check_dataset(path: str | Path, max_seq_length: int = 1024, tokenizer=None, eval_path: str | Path | None = None,
                  fmt: str = "auto", epochs: float = 3, batch_size: int = 4, gradient_accumulation_steps: int = 1,
                  max_steps: int | None = None, stage: str | None = "sft",
                  dataset_dir: str | Path | None = None) -> DataReport:
    """Check a training file (and optionally an eval file) for `stage` (method.stage) without training;
    never raises for bad data."""
    report = DataReport(path=str(path), stage=stage or "sft")
    stages = sorted({s for usable in STAGES_FOR_KIND.values() for s in usable})
    if stage is not None and stage not in stages:
        report.fatal = f"Unknown stage {stage!r}; use one of {', '.join(stages)}."
        return report
    try:
        loaded = read_dataset(path, fmt, stage=None, dataset_dir=dataset_dir)  # the stage is judged below, so the report can name the kind
    except (DataError, FileNotFoundError) as exc:
        report.fatal = str(exc)
        report.errors = getattr(exc, "problems", [])
        return report
    report.format, report.encoding, report.file_format = loaded.row_format, loaded.encoding, loaded.file_format
    report.kind, report.fields, report.n_rows = loaded.kind, loaded.fields, loaded.total_rows
    if stage is None:  # any stage: check the file for the stage its kind needs (file uploads)
        stage = report.stage = STAGES_FOR_KIND[loaded.kind][0]
    problem = stage_problem(loaded.kind, stage)
    if problem:
        report.fatal = f"{Path(path).name}: {problem}"
        return report
    steps = {"epochs": epochs, "batch_size": batch_size, "gradient_accumulation_steps": gradient_accumulation_steps,
             "max_steps": max_steps}
    if loaded.kind in ("preference", "kto"):
        return _check_preference(path, loaded, report, steps)
    report.n_examples, report.errors = len(loaded.examples), list(loaded.errors)
    report.warnings.extend(loaded.warnings)

    tok = _load_tokenizer(tokenizer)
    counts, targets, long_lines, dropped_lines = [], [], [], []
    seen: dict[str, int] = {}
    for example, line in zip(loaded.examples, loaded.lines):
        n, n_target, first_target = _count(example, tok)
        counts.append(n)
        targets.append(n_target)
        if n > max_seq_length:
            long_lines.append({"line": line, "tokens": n})
            if first_target >= max_seq_length:
                dropped_lines.append(line)
        key = _key(example)
        if key in seen:
            report.duplicates.append({"line": line, "duplicate_of": seen[key]})
        else:
            seen[key] = line

    if counts:
        report.tokens = {
            "total": sum(counts), "assistant": sum(targets), "min": min(counts), "max": max(counts),
            "mean": round(sum(counts) / len(counts), 1), "p50": _percentile(counts, 0.5), "p95": _percentile(counts, 0.95),
            "counted_with": type(tok).__name__ if tok is not None else "approximation (no tokenizer given)",
        }
    else:
        report.tokens = {"total": 0, "assistant": 0, "counted_with": "none"}
    truncation = _TEXT_TRUNCATION if loaded.kind == "text" else _TRUNCATION
    report.too_long = {
        "count": len(long_lines), "max_seq_length": max_seq_length,
        "longest": max(counts) if counts else 0, "examples": long_lines[:20],
        "dropped": len(dropped_lines), "truncation": truncation,
    }
    if long_lines:
        what = "documents" if loaded.kind == "text" else "examples"
        report.warnings.append(f"{len(long_lines)} of {len(counts)} {what} are longer than max_seq_length={max_seq_length} "
                               f"tokens (longest {max(counts)}); they are {truncation}.")
    if report.duplicates:
        report.warnings.append(f"{len(report.duplicates)} duplicate example(s), e.g. line {report.duplicates[0]['line']} "
                               f"repeats line {report.duplicates[0]['duplicate_of']}; duplicates weigh those examples more.")
    if loaded.examples and len(loaded.examples) < 10:
        report.warnings.append(f"Only {len(loaded.examples)} examples; fine-tuning usually needs at least a few dozen.")

    if eval_path:
        report.eval = _check_eval(eval_path, fmt, loaded, report, dataset_dir=dataset_dir)

    report.estimated_steps = _steps(len(loaded.examples), sum(counts), **steps)
    return report


def _steps(n_train: int, tokens: int, epochs: float, batch_size: int, gradient_accumulation_steps: int,
           max_steps: int | None) -> dict:
    per_step = max(1, batch_size * gradient_accumulation_steps)
    steps_per_epoch = math.ceil(n_train / per_step) if n_train else 0
    total = max_steps if max_steps else math.ceil(steps_per_epoch * epochs)
    return {"epochs": epochs, "batch_size": batch_size, "gradient_accumulation_steps": gradient_accumulation_steps,
            "steps_per_epoch": steps_per_epoch, "total": total,
            "trained_tokens": int(tokens * (total / steps_per_epoch if steps_per_epoch else 0))}


def _check_preference(path, loaded, report: DataReport, steps: dict) -> DataReport:
    """A preference or KTO file: its rows were read by `trainer.data.preference` (in `read_dataset`); a single
    file is also read by that module's own check for its warnings (identical pairs, unused fields, one-sided labels).
    Tokens are approximate (prompt + every reply)."""
    from trainer.data.preference import read_preference

    report.n_examples, report.errors = len(loaded.examples), list(loaded.errors)
    if Path(path).expanduser().is_file():  # dataset names (dataset_info.json) have no single file to re-read
        try:
            data = read_preference(path)
        except DataError as exc:
            report.fatal = str(exc)
            report.errors = getattr(exc, "problems", [])
            return report
        report.format = data.layout
        report.warnings.extend(f"line {w['line']}: {w['message']}" if w.get("line") else w["message"] for w in data.warnings)
    counts = [sum(_approx_tokens(m["content"]) + 4 for key in ("prompt", "chosen", "rejected", "completion")
                  for m in row.get(key, [])) for row in loaded.examples]
    report.tokens = ({"total": sum(counts), "min": min(counts), "max": max(counts),
                      "mean": round(sum(counts) / len(counts), 1), "counted_with": "approximation (preference rows)"}
                     if counts else {"total": 0, "counted_with": "none"})
    report.estimated_steps = _steps(len(loaded.examples), sum(counts), **steps)
    return report


def _check_eval(eval_path, fmt: str, train, report: DataReport, dataset_dir: str | Path | None = None) -> dict:
    try:
        ev = read_dataset(eval_path, fmt, dataset_dir=dataset_dir)
    except (DataError, FileNotFoundError) as exc:
        return {"path": str(eval_path), "n_examples": 0, "errors": [{"line": 0, "message": str(exc)}], "overlap": []}
    train_keys: dict[str, int] = {}
    train_prompts: dict[str, int] = {}
    for e, line in zip(train.examples, train.lines):  # the first occurrence names the line
        train_keys.setdefault(_key(e), line)
        train_prompts.setdefault(_prompt_key(e), line)
    overlap = []
    for e, line in zip(ev.examples, ev.lines):
        if _key(e) in train_keys:
            overlap.append({"eval_line": line, "train_line": train_keys[_key(e)], "kind": "identical example"})
        elif _prompt_key(e) in train_prompts:
            overlap.append({"eval_line": line, "train_line": train_prompts[_prompt_key(e)], "kind": "same prompt"})
    if overlap:
        report.warnings.append(f"{len(overlap)} eval example(s) also appear in the training file (e.g. eval line "
                               f"{overlap[0]['eval_line']} = train line {overlap[0]['train_line']}); eval scores will be optimistic.")
    return {"path": str(eval_path), "n_examples": len(ev.examples), "errors": ev.errors, "overlap": overlap}
