"""What people said about the assistant's answers, kept on this machine and turned into a RAG eval set.

Each chat answer can get a thumbs up or down and a correction (the fact the answer should have
stated); answers the assistant declined (`grounded` false: the docs do not cover the question) are
kept too, so the Knowledge page can list what the docs miss. One JSON line per answer, keyed by its
id, in `$TUNEPILOT_HOME/feedback/answers.jsonl`. A change rewrites the whole file through
`tunepilot.core.atomic` under a file lock: feedback is a few lines per conversation, and a reader
(or a second browser tab, or a crash) then never meets half a line. Nothing here opens a network
connection; the file leaves the machine only if the user copies it.

`export_eval_set()` writes the rows `tunepilot eval rag --questions` reads:

| feedback | eval row |
|---|---|
| thumbs up on a cited answer | `expected_source`: the sources it cited |
| a correction | `expected_fact`: the correction as a literal pattern |
| thumbs up on a declined answer (the user agrees the docs do not cover it) | `should_decline: true` |
| thumbs down on a declined answer | `should_decline: false` (the docs should answer it) |

Entries that say nothing checkable (no verdict yet, a thumbs down with no correction) are listed as
skipped with the reason. When one question got several verdicts, the latest one counts.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import uuid
from pathlib import Path

from tunepilot.core import atomic, tables
from tunepilot.core.errors import UserError
from tunepilot.core.text_encoding import UndecodableText, decode_text

RATINGS = ("up", "down")
EXPORT_FORMATS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv"}
MAX_TEXT = 4000  # an answer or correction longer than this is cut (with a marker) in the store


class FeedbackError(UserError):
    """Feedback that cannot be stored or read as given; the message says the fix."""


def store_path() -> Path:
    from tunepilot.core.workspace import subdir

    return subdir("feedback") / "answers.jsonl"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _cut(text: str | None) -> str:
    text = (text or "").strip()
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …[cut]"


# --------------------------------------------------------------------------- reading and writing


def _read(path: Path) -> list[dict]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    if not data.strip():
        return []
    try:
        text, _ = decode_text(data)
    except UndecodableText as exc:
        raise FeedbackError(f"{path} cannot be read as text ({exc}); move it aside to start a new feedback file.") from None
    table = tables.parse_table(text, "jsonl")
    problem = table.first_problem
    if problem is not None:
        raise FeedbackError(f"{path} line {problem.line} is not a feedback entry ({problem.detail or problem.kind}); "
                            "fix or delete that line.")
    return [row.data for row in table.rows]


def _write(path: Path, entries: list[dict]) -> None:
    atomic.write_text(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))


def _locked(path: Path):
    from filelock import FileLock

    return FileLock(str(path.with_name(path.name + ".lock")))


def list_entries() -> list[dict]:
    """Every stored entry, oldest first."""
    return _read(store_path())


def record(question: str, answer: dict, rating: str | None = None, correction: str | None = None,
           entry_id: str | None = None) -> dict:
    """Store (or update, when `entry_id` is already stored) the feedback on one answer.

    `answer` is `Answer.to_dict()` (answer, citations, engine, grounded). Updating keeps the stored
    question and answer and changes only the rating and the correction. Returns the stored entry."""
    if rating not in (None, *RATINGS):
        raise FeedbackError(f"rating {rating!r} is not one of up, down (or none).")
    path = store_path()
    with _locked(path):
        entries = _read(path)
        existing = next((e for e in entries if entry_id and e.get("id") == entry_id), None)
        if existing is not None:
            existing.update(rating=rating, correction=_cut(correction) or None, updated_at=_now())
            entry = existing
        else:
            question = (question or "").strip()
            if not question:
                raise FeedbackError("the question is empty; feedback belongs to an asked question.")
            entry = {
                "id": entry_id or uuid.uuid4().hex[:16],
                "created_at": _now(),
                "updated_at": _now(),
                "question": _cut(question),
                "answer": _cut(answer.get("answer")),
                "grounded": bool(answer.get("grounded")),
                "engine": answer.get("engine", ""),
                "citations": [{"n": c.get("n"), "source": c.get("source", ""), "heading": c.get("heading", "")}
                              for c in answer.get("citations") or []],
                "rating": rating,
                "correction": _cut(correction) or None,
            }
            entries.append(entry)
        _write(path, entries)
    return entry


def summary(entries: list[dict] | None = None) -> dict:
    """Counts for the Knowledge page and `feedback list`."""
    entries = list_entries() if entries is None else entries
    return {
        "entries": len(entries),
        "up": sum(1 for e in entries if e.get("rating") == "up"),
        "down": sum(1 for e in entries if e.get("rating") == "down"),
        "corrections": sum(1 for e in entries if e.get("correction")),
        "declined": sum(1 for e in entries if not e.get("grounded")),
    }


# --------------------------------------------------------------------------- export


def fact_pattern(correction: str) -> str:
    """A correction as a regular expression that matches it literally, whatever the spacing."""
    return r"\s+".join(re.escape(part) for part in correction.split())


def _eval_row(entry: dict) -> tuple[dict | None, str]:
    """(row, "") for an entry that says something checkable, else (None, why not)."""
    row: dict = {"question": entry["question"]}
    rating, correction = entry.get("rating"), entry.get("correction")
    if correction:
        row["expected_fact"] = fact_pattern(correction)
    if entry.get("grounded"):
        if rating == "up":
            sources = list(dict.fromkeys(c["source"] for c in entry.get("citations", []) if c.get("source")))
            if sources:
                row["expected_source"] = sources
            elif not correction:
                return None, "thumbs up on an answer without citations: no source to expect"
        elif not correction:
            return None, ("thumbs down without a correction: nothing to expect" if rating == "down"
                          else "no verdict yet")
    else:
        if rating == "up":
            row["should_decline"] = True
        elif rating == "down":
            row["should_decline"] = False
        elif not correction:
            return None, "declined, no verdict yet"
    row["id"] = entry["id"]
    row["notes"] = f"from feedback of {entry.get('updated_at') or entry.get('created_at')}"
    return row, ""


def eval_rows(entries: list[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """(rows, skipped): the eval set, and each entry left out with the reason."""
    entries = list_entries() if entries is None else entries
    latest: dict[str, dict] = {}
    skipped = []
    for entry in sorted(entries, key=lambda e: e.get("updated_at") or e.get("created_at") or ""):
        key = " ".join(entry.get("question", "").lower().split())
        if key in latest:
            skipped.append({"id": latest[key]["id"], "question": latest[key]["question"],
                            "reason": "superseded by a later verdict on the same question"})
        latest[key] = entry
    rows = []
    for entry in latest.values():
        row, why = _eval_row(entry)
        if row is None:
            skipped.append({"id": entry["id"], "question": entry["question"], "reason": why})
        else:
            rows.append(row)
    return rows, skipped


def render_eval_set(rows: list[dict], fmt: str = "jsonl") -> str:
    """The rows as the text of a .jsonl, .json or .csv eval file."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    columns = ["question", "expected_source", "expected_fact", "should_decline", "id", "notes"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        cells = dict(r)
        if isinstance(cells.get("expected_source"), list):
            cells["expected_source"] = "|".join(cells["expected_source"])
        if "should_decline" in cells:
            cells["should_decline"] = "true" if cells["should_decline"] else "false"
        writer.writerow({c: cells.get(c, "") for c in columns})
    return "\ufeff" + buf.getvalue()  # a BOM, so Excel shows Chinese questions correctly


def export_eval_set(out: str | Path | None = None) -> dict:
    """The feedback as a RAG eval set: `{"rows", "count", "skipped", "out"}`; with `out`, also
    written there (.jsonl, .json or .csv, chosen by the suffix)."""
    rows, skipped = eval_rows()
    target = None
    if out is not None:
        target = Path(out).expanduser()
        fmt = EXPORT_FORMATS.get(target.suffix.lower())
        if fmt is None:
            raise FeedbackError(f"cannot write {target.name}: use a .jsonl, .json or .csv file name.")
        if target.is_dir():
            raise FeedbackError(f"{target} is a folder; give a file name such as {target / 'feedback_eval.jsonl'}.")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(target, render_eval_set(rows, fmt))
    return {"rows": rows, "count": len(rows), "skipped": skipped, "out": str(target) if target else None}
