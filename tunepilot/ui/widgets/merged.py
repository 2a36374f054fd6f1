"""Find the merged (standalone) folder of a fine-tuned model, if it has been merged.

`trainer.training.merge.merge(ft_id)` writes `merged/` beside the adapter folder (with `merge_info.json`);
the Models page looks there so a merge done earlier, or from the CLI, shows up too.
"""

from __future__ import annotations

from pathlib import Path


def merged_folder(entry) -> Path | None:
    """The merged model folder for a fine-tuned registry entry, or None before merging (or for full models)."""
    from trainer.models.registry import ModelError
    from trainer.training.merge import MergeError, find_adapter

    try:
        adapter = find_adapter(entry.id)
    except (MergeError, ModelError):
        return None
    folder = adapter.parent / "merged"
    return folder if (folder / "config.json").exists() and (folder / "merge_info.json").exists() else None
