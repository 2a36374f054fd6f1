"""Read the job card (the markdown summary the trainer writes into a finished job's output folder)."""

from __future__ import annotations

from pathlib import Path

# The trainer writes its card under one of these names in the job's output_dir.
CARD_NAMES = ("job_card.md", "README.md")


def find_job_card(job: dict) -> str | None:
    """The card's markdown text, or None while the job has not written one."""
    folder = Path(job.get("output_dir") or "")
    if not job.get("output_dir") or not folder.is_dir():
        return None
    for name in CARD_NAMES:
        path = folder / name
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    return None
