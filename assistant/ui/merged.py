"""Find the merged (standalone) folder of a fine-tuned model, if it has been merged."""

from __future__ import annotations

from pathlib import Path


def merged_folder(entry) -> Path | None:
    """The merged model folder recorded for a fine-tuned registry entry, or None before merging."""
    recorded = (entry.extra or {}).get("merged_path")
    if recorded and (Path(recorded) / "config.json").exists():
        return Path(recorded)
    return None
