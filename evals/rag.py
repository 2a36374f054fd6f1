"""RAG self-evaluation: does the docs assistant find, state and cite what a question set expects?

The question file is JSONL, JSON or CSV (read by `evals.datasets.load_dataset`, so any encoding it
reads works), one question per row:

| column | meaning |
|---|---|
| `question` (or `query`, `q`, `input`, `问题`) | required; a row with no question and none of the other columns (a header note) is skipped and named in the notices |
| `expected_source` (or `source`, `expected_sources`) | the file(s) that answer it, as the index names them (`en/lora.md`); a glob such as `library/peft==*/LoraConfig.md` matches any version; several as a JSON list or separated by `|`; an explicitly empty list (`[]`) means no document answers it, i.e. `should_decline` |
| `expected_fact` (or `fact`, `pattern`) | a regular expression (case-insensitive) the answer must contain, e.g. `2e-?4`; a JSON list means any of them |
| `should_decline` | true when the docs do not cover the question and the assistant must say so (true/false, yes/no, 1/0; empty is false) |
| `id`, `lang`, `notes`, `tags` | carried into the results |

Any other column is named in the result's notices, not silently used. The metrics:

- `hit_at_k`: share of questions with an expected source that have one in the top k passages;
  `mrr`: the mean of 1/rank of the first such passage (0 when none is in the top k);
- `fact_in_passages`: the expected fact occurs in one of the top k passages (retrieval could answer);
- `answer_contains_fact`: the answer text contains it; `citation_support`: one of the answer's
  citations holds it (the answer says it *and* cites a passage that says it);
- `decline_precision` / `decline_recall`: of the questions the assistant declined (`grounded`
  false), how many should have been; of those that should have been, how many were.

A metric whose question subset is empty is `None` (not 0), and `support` says how many questions
each metric is computed on. Searching and answering are passed in (`search(question, k)`,
`answer(question)`), so this module scores any retriever; `assistant.rag_eval` wires the product's
own. The last result is kept under the workspace (`evals/rag/latest.json`) for the Knowledge page.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.datasets import cell_text, load_dataset
from evals.errors import EvalError
from tunepilot.core import atomic
from tunepilot.core.errors import is_user_error, one_line
from tunepilot.core.progress import progress_bar

Search = Callable[[str, int], list]
Answerer = Callable[[str], dict]

COLUMNS = {
    "question": ("question", "query", "q", "input", "问题"),
    "expected_source": ("expected_source", "expected_sources", "source", "sources"),
    "expected_fact": ("expected_fact", "expected_facts", "fact", "pattern"),
    "should_decline": ("should_decline", "decline"),
}
CARRIED = ("id", "lang", "notes", "tags")
METRICS = ("hit_at_k", "mrr", "fact_in_passages", "answer_contains_fact", "citation_support",
           "decline_precision", "decline_recall")
_TRUE = {"true", "yes", "y", "1", "是", "t"}
_FALSE = {"false", "no", "n", "0", "否", "f", ""}
_MARKER = re.compile(r"\s*\[\d+(?:\s*[,，]\s*\d+)*\]")  # "[1]" / "[1, 2]" citation markers in answers


@dataclass
class RagQuestion:
    row: int  # 1-based position in the file
    question: str
    expected_source: list[str] = field(default_factory=list)
    expected_fact: list[str] = field(default_factory=list)  # regular expressions, any one suffices
    should_decline: bool = False
    extra: dict = field(default_factory=dict)  # the carried columns

    def to_dict(self) -> dict:
        data = {"question": self.question}
        if self.expected_source:
            data["expected_source"] = self.expected_source if len(self.expected_source) > 1 else self.expected_source[0]
        if self.expected_fact:
            data["expected_fact"] = self.expected_fact if len(self.expected_fact) > 1 else self.expected_fact[0]
        if self.should_decline:
            data["should_decline"] = True
        return {**data, **self.extra}


@dataclass
class QuestionSet:
    path: str
    questions: list[RagQuestion]
    encoding: str = "utf-8"
    notices: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- reading


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {c.strip().lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _as_list(value, split: str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [cell_text(v).strip() for v in value if cell_text(v).strip()]
    text = cell_text(value).strip()
    if split and text.startswith("[") and text.endswith("]"):  # a JSON list written into a CSV cell
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return _as_list(parsed, None)
    parts = re.split(split, text) if split else [text]
    return [p.strip() for p in parts if p.strip()]


def _as_bool(value, row: int, column: str) -> bool:
    if isinstance(value, bool):
        return value
    text = cell_text(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise EvalError(f"row {row}: {column} is {cell_text(value)!r}; write true or false (yes/no, 1/0 also work).")


def parse_questions(rows: list[dict], columns: list[str], path: str = "") -> QuestionSet:
    """Rows (as read from a file) -> questions; the first problem raises EvalError naming its row."""
    found = {key: _pick(columns, names) for key, names in COLUMNS.items()}
    if found["question"] is None:
        raise EvalError(f"{path or 'the question set'} has no question column (columns found: "
                        f"{', '.join(columns) or 'none'}); name it 'question'.")
    carried = {c for c in columns if c.strip().lower() in CARRIED}
    unknown = [c for c in columns if c not in found.values() and c not in carried]
    notices = []
    if unknown:
        notices.append(f"ignored column(s) {', '.join(unknown)}: not one of question, expected_source, "
                       f"expected_fact, should_decline, {', '.join(CARRIED)}")
    questions = []
    empty_source_rows = []
    for number, row in enumerate(rows, start=1):
        text = cell_text(row.get(found["question"])).strip()
        if not text and not any(row.get(found[key]) not in (None, "") for key in COLUMNS if found[key]):
            notices.append(f"skipped row {number}: no question (keys {', '.join(map(str, row)) or 'none'})")
            continue
        if not text:
            raise EvalError(f"row {number} of {path or 'the question set'} has an empty question; fill it in or delete the row.")
        facts = _as_list(row.get(found["expected_fact"]) if found["expected_fact"] else None, None)
        for fact in facts:
            try:
                re.compile(fact)
            except re.error as exc:
                raise EvalError(f"row {number}: expected_fact {fact!r} is not a valid regular expression ({exc}); "
                                "escape characters such as ( [ + ? with a backslash.") from None
        decline_col = found["should_decline"]
        should_decline = _as_bool(row.get(decline_col), number, decline_col) if decline_col else False
        source_cell = row.get(found["expected_source"]) if found["expected_source"] else None
        if source_cell == [] and not (decline_col and row.get(decline_col) not in (None, "")):
            should_decline = True
            empty_source_rows.append(number)
        questions.append(RagQuestion(
            row=number,
            question=text,
            expected_source=_as_list(source_cell, r"\s*[|;]\s*"),
            expected_fact=facts,
            should_decline=should_decline,
            extra={c: row[c] for c in carried if row.get(c) not in (None, "")},
        ))
    if empty_source_rows:
        notices.append(f"{len(empty_source_rows)} row(s) list no expected source ([]); they count as should_decline "
                       f"(rows {', '.join(map(str, empty_source_rows[:10]))}{' …' if len(empty_source_rows) > 10 else ''})")
    return QuestionSet(path=path, questions=questions, notices=notices)


def load_questions(path: str | Path) -> QuestionSet:
    """Read a question file (JSONL, JSON or CSV; see the module docstring for the columns)."""
    data = load_dataset(path)
    qs = parse_questions(data.rows, data.columns, str(data.path or path))
    qs.encoding = data.encoding
    qs.notices = data.notes + qs.notices
    return qs


# --------------------------------------------------------------------------- scoring


def _get(item, name: str, default=None):
    return item.get(name, default) if isinstance(item, dict) else getattr(item, name, default)


def source_matches(source: str, patterns: list[str]) -> bool:
    """Exact source, or a glob (`*`, `?`, `[...]`) over it."""
    return any(source == p or fnmatch.fnmatchcase(source, p) for p in patterns)


def contains_fact(text: str, facts: list[str]) -> bool:
    """Any of the regular expressions occurs in `text` (case-insensitive; citation markers and
    line breaks do not get in the way)."""
    flat = " ".join(_MARKER.sub("", text or "").split())
    return any(re.search(f, flat, re.IGNORECASE) for f in facts)


def _ratio(values: list[bool | float]) -> float | None:
    return round(sum(float(v) for v in values) / len(values), 4) if values else None


def score_question(q: RagQuestion, hits: list, reply: dict, k: int) -> dict:
    """One question's record: where the expected source ranked, whether the answer carries and cites the fact."""
    sources = [str(_get(h, "source", "")) for h in hits[:k]]
    rank = next((i for i, s in enumerate(sources, start=1) if source_matches(s, q.expected_source)), None)
    citations = list(reply.get("citations") or [])
    declined = not reply.get("grounded", False)
    record: dict[str, Any] = {"row": q.row, **q.to_dict(), "should_decline": q.should_decline,
                              "declined": declined, "top_sources": sources,
                              "cited_sources": [c.get("source", "") for c in citations],
                              "answer": (reply.get("answer") or "")[:600], "error": None}
    if q.expected_source:
        record.update(rank=rank, hit=rank is not None, reciprocal_rank=round(1.0 / rank, 4) if rank else 0.0)
    if q.expected_fact:
        record["fact_in_passages"] = any(contains_fact(str(_get(h, "text", "")), q.expected_fact) for h in hits[:k])
        record["answer_contains_fact"] = not declined and contains_fact(reply.get("answer", ""), q.expected_fact)
        record["citation_support"] = not declined and any(contains_fact(c.get("text", ""), q.expected_fact) for c in citations)
    return record


def summarize(records: list[dict]) -> tuple[dict, dict]:
    """(metrics, support): each metric's value over the questions it applies to, and how many those are."""
    ok = [r for r in records if not r.get("error")]
    with_source = [r for r in ok if "hit" in r]
    with_fact = [r for r in ok if "answer_contains_fact" in r and not r["should_decline"]]
    declined = [r for r in ok if r["declined"]]
    should = [r for r in ok if r["should_decline"]]
    values = {
        "hit_at_k": [r["hit"] for r in with_source],
        "mrr": [r["reciprocal_rank"] for r in with_source],
        "fact_in_passages": [r["fact_in_passages"] for r in with_fact],
        "answer_contains_fact": [r["answer_contains_fact"] for r in with_fact],
        "citation_support": [r["citation_support"] for r in with_fact],
        "decline_precision": [r["should_decline"] for r in declined],
        "decline_recall": [r["declined"] for r in should],
    }
    return {m: _ratio(values[m]) for m in METRICS}, {m: len(values[m]) for m in METRICS}


def evaluate(questions: QuestionSet, search: Search, answer: Answerer, k: int = 5, progress: bool = False,
             on_progress: Callable[[int, int], None] | None = None, **context) -> dict:
    """Search and answer every question, score them, and return the result document.

    A question the product rejects as the user's mistake (e.g. too long for the index) is recorded
    with its error and left out of the metrics; anything else is a bug and propagates."""
    if k < 1:
        raise EvalError(f"k must be at least 1, not {k}.")
    started = time.time()
    records = []
    total = len(questions.questions)
    with progress_bar(disable=not progress or total == 0, transient=True) as bars:
        task = bars.add_task("rag eval", total=total)
        for done, q in enumerate(questions.questions, start=1):
            try:
                hits = list(search(q.question, k))
                reply = answer(q.question)
                reply = reply.to_dict() if hasattr(reply, "to_dict") else dict(reply)
                records.append(score_question(q, hits, reply, k))
            except Exception as exc:
                if not is_user_error(exc):
                    raise
                records.append({"row": q.row, **q.to_dict(), "should_decline": q.should_decline,
                                "declined": False, "error": one_line(exc)})
            bars.advance(task)
            if on_progress is not None:
                on_progress(done, total)
    metrics, support = summarize(records)
    return {
        "questions_file": questions.path,
        "k": k,
        **context,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        "counts": {"questions": total, "with_source": sum(1 for q in questions.questions if q.expected_source),
                   "with_fact": sum(1 for q in questions.questions if q.expected_fact),
                   "should_decline": sum(1 for q in questions.questions if q.should_decline),
                   "errors": sum(1 for r in records if r.get("error"))},
        "metrics": metrics,
        "support": support,
        "notices": list(questions.notices),
        "rows": records,
    }


# --------------------------------------------------------------------------- the stored result


def _results_dir() -> Path:
    from tunepilot.core.workspace import evals_dir

    path = evals_dir() / "rag"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_result(result: dict) -> Path:
    """Keep the result under the workspace (a timestamped file, and `latest.json` for the Knowledge page)."""
    folder = _results_dir()
    stamp = result.get("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ")).replace(":", "").replace("-", "")
    path = folder / f"rag-{stamp}.json"
    atomic.write_json(path, result)
    atomic.write_json(folder / "latest.json", {**result, "saved_as": str(path)})
    return path


def latest_result() -> dict | None:
    """The last stored result, or None when no RAG eval has run in this workspace."""
    path = _results_dir() / "latest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise EvalError(f"{path} is not valid JSON ({exc}); run `tunepilot eval rag` again to rewrite it.") from None
