"""Atomic writes: a reader sees the old file (or folder) or the new one, never half of one.

Every file that other processes read while it may be rewritten (the model registry, eval run
summaries, the BM25 snapshot, uploaded files' metadata, configs written next to a run) goes
through here:

- `open_atomic(path, mode)` yields a file in the target's folder; on a clean exit it is flushed,
  fsync'ed and `os.replace`d over `path` (one rename on the same filesystem); on an exception the
  temp file is removed and `path` is untouched, so a crash mid-write leaves the previous content.
- `write_text`, `write_bytes` and `write_json` are the one-call forms.
- `replace_dir(staging, target)` swaps a finished folder into place with renames only (the old
  folder is renamed aside first and deleted after), for models, adapters and checkpoints that are
  written as folders.

Temp names start with "." and end in ".tmp", so globs such as `file-*.meta.json` or
`checkpoint-*` never pick one up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not possible on Windows, where os.open cannot open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_atomic(path: str | Path, mode: str = "w", encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO[Any]]:
    """A file to write `path`'s new content into ("w" text or "wb" bytes); replaced over `path` on success."""
    if mode not in ("w", "wb"):
        raise ValueError(f"open_atomic writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    target = Path(path)  # its folder must exist, as for open(): creating folders is the caller's decision
    tmp = _temp_name(target)
    # O_EXCL: never reuse someone else's file; 0o666 minus the umask, the mode a plain open() gives.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        fh = os.fdopen(fd, "wb") if mode == "wb" else os.fdopen(fd, "w", encoding=encoding, newline=newline)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace `path` with `data` atomically."""
    with open_atomic(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Replace `path` with `text` atomically (newlines as `Path.write_text` writes them)."""
    with open_atomic(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | Path, data: Any, *, indent: int | None = 2, default: Any = None) -> Path:
    """Replace `path` with `data` as JSON (UTF-8, non-ASCII kept readable, no trailing newline)."""
    return write_text(path, json.dumps(data, ensure_ascii=False, indent=indent, default=default))


def replace_dir(staging: str | Path, target: str | Path) -> Path:
    """Move the finished folder `staging` to `target` (same filesystem), replacing any folder there.

    Renames only: the old `target` is moved aside, `staging` takes its name, then the old one is
    deleted, so `target` is always either the complete old folder or the complete new one. If the
    second rename fails the old folder is put back.
    """
    staging, target = Path(staging), Path(target)
    retired: Path | None = None
    if target.exists():
        retired = target.with_name(f".retired-{target.name}-{uuid.uuid4().hex[:8]}")
        os.replace(target, retired)
    try:
        os.replace(staging, target)
    except BaseException:
        if retired is not None:
            os.replace(retired, target)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
    _fsync_folder(target.parent)
    return target
