"""Uploaded training files (`file-...` ids) stored under `$TUNEPILOT_HOME/files`.

Each file is `<id><ext>` with its metadata beside it in `<id>.meta.json` (OpenAI's file object plus
the stored name). A file is kept only after the trainer's data check accepted it, so a job never starts on
a file that is known to be broken.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from tunepilot.core import atomic, workspace
from tunepilot.core.errors import UserError

ALLOWED_SUFFIXES = (".jsonl", ".json", ".csv")
PURPOSES = ("fine-tune",)


class FileStoreError(UserError, ValueError):
    """A file that cannot be stored or found; the message names the fix."""


class UnknownFile(FileStoreError):
    pass


class InvalidTrainingFile(FileStoreError):
    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


def _folder() -> Path:
    return workspace.files_dir()


def new_file_id() -> str:
    return f"file-{uuid.uuid4().hex[:24]}"


def staging_path(filename: str) -> Path:
    """Where an upload is written before it is checked (same folder, so the final move is atomic)."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in ALLOWED_SUFFIXES:
        raise FileStoreError(f"{filename!r} has an unsupported extension; upload a .jsonl file "
                             f"(also accepted: {', '.join(ALLOWED_SUFFIXES[1:])}).")
    return _folder() / f".upload-{uuid.uuid4().hex}{suffix}"


def format_check_errors(report: dict, limit: int = 5) -> str:
    """The data check's per-line problems as one readable line."""
    problems = report.get("errors") or []
    parts = []
    for p in problems[:limit]:
        if isinstance(p, dict):
            line = p.get("line") or p.get("line_no") or p.get("row")
            msg = p.get("message") or p.get("error") or json.dumps(p, ensure_ascii=False)
            parts.append(f"line {line}: {msg}" if line else str(msg))
        else:
            parts.append(str(p))
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(parts) + more if parts else "the data check rejected the file"


def check_and_store(staged: Path, filename: str, purpose: str) -> dict:
    """Run the data check on a staged upload; keep it as a new file id if it passes."""
    from trainer.data.check import check_dataset

    try:
        if purpose not in PURPOSES:
            raise FileStoreError(f"purpose {purpose!r} is not supported; use 'fine-tune'.")
        if staged.stat().st_size == 0:
            raise FileStoreError(f"{filename!r} is empty; upload a JSONL file with one training example per line.")
        report = check_dataset(str(staged), stage=None)  # any kind a stage can train (SFT, DPO, KTO files)
        data = report.to_dict()
        if not report.ok:
            raise InvalidTrainingFile(f"Invalid training file {filename!r}: {format_check_errors(data)}.", data)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    file_id = new_file_id()
    target = _folder() / f"{file_id}{staged.suffix}"
    os.replace(staged, target)
    meta = {
        "id": file_id, "object": "file", "bytes": target.stat().st_size, "created_at": int(time.time()),
        "filename": Path(filename).name, "purpose": purpose, "status": "processed", "status_details": None,
        "expires_at": None, "stored_as": target.name,
        # tunepilot extension: what the data check found (counts, warnings)
        "data_check": {k: data.get(k) for k in ("kind", "format", "n_rows", "n_examples", "tokens", "warnings")},
    }
    # Atomic, so list_files never reads half a metadata file while an upload finishes.
    atomic.write_json(_meta_path(file_id), meta)
    return get_file(file_id)


def _meta_path(file_id: str) -> Path:
    return _folder() / f"{file_id}.meta.json"


def _valid_id(file_id: str) -> bool:
    # Ids become file names: refuse anything that could step outside the folder.
    return file_id.startswith("file-") and file_id[5:].isalnum()


def _read_meta(file_id: str) -> dict:
    if not _valid_id(file_id) or not _meta_path(file_id).exists():
        raise UnknownFile(f"No file with id {file_id!r}; upload one with POST /v1/files (purpose 'fine-tune').")
    return json.loads(_meta_path(file_id).read_text(encoding="utf-8"))


def get_file(file_id: str) -> dict:
    """OpenAI's file object for an id (without the storage detail)."""
    return {k: v for k, v in _read_meta(file_id).items() if k != "stored_as"}


def file_path(file_id: str) -> Path:
    path = _folder() / _read_meta(file_id)["stored_as"]
    if not path.exists():
        raise UnknownFile(f"The content of {file_id!r} is missing from {_folder()}; upload the file again.")
    return path


def file_id_for_path(path: str | Path | None) -> str | None:
    """The file id behind a dataset path, when the path is one of our stored files."""
    if not path:
        return None
    p = Path(path)
    file_id = p.name.split(".")[0]
    if p.parent.resolve() == _folder().resolve() and _valid_id(file_id):
        return file_id
    return None


RESULTS_PURPOSE = "fine-tune-results"  # OpenAI's purpose for a job's result files


def store_result_file(source: Path, job_id: str) -> dict:
    """A job's result CSV as a file object; one stable id per job, refreshed when the CSV changed."""
    import hashlib
    import shutil

    file_id = "file-" + hashlib.sha256(f"results:{job_id}".encode()).hexdigest()[:24]
    target = _folder() / f"{file_id}.csv"
    if _meta_path(file_id).exists() and target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return get_file(file_id)
    staged = _folder() / f".upload-{uuid.uuid4().hex}.csv"
    shutil.copyfile(source, staged)
    os.replace(staged, target)
    meta = {"id": file_id, "object": "file", "bytes": target.stat().st_size, "created_at": int(time.time()),
            "filename": f"{job_id}-results.csv", "purpose": RESULTS_PURPOSE, "status": "processed",
            "status_details": None, "expires_at": None, "stored_as": target.name}
    atomic.write_json(_meta_path(file_id), meta)
    return get_file(file_id)


def list_files(purpose: str | None = None) -> list[dict]:
    metas = []
    for meta_file in _folder().glob("file-*.meta.json"):
        try:
            meta = get_file(meta_file.name.split(".")[0])
        except (OSError, json.JSONDecodeError, UnknownFile):
            continue
        if purpose is None or meta.get("purpose") == purpose:
            metas.append(meta)
    return sorted(metas, key=lambda m: (m.get("created_at", 0), m["id"]), reverse=True)


def delete_file(file_id: str) -> dict:
    path = file_path(file_id)
    path.unlink(missing_ok=True)
    _meta_path(file_id).unlink(missing_ok=True)
    return {"id": file_id, "object": "file", "deleted": True}
