"""Deleting fine-tuned models: one rule for the HTTP API and `tunepilot models delete`.

Only fine-tuned (`ft:`) models can be deleted; built-in and registered base models cannot, as with
OpenAI. Deleting removes the id from the registry, so no client can use it any more; the job's
run folder (adapter, checkpoints, job card) stays on disk until the user removes it.
"""

from __future__ import annotations

from trainer.models import registry as models


class ModelNotDeletable(ValueError):
    """The id exists but is not a fine-tuned model."""


def delete_finetuned_model(model_id: str) -> dict:
    """Unregister a fine-tuned model; returns OpenAI's deletion object `{"id", "object", "deleted"}`."""
    entries = {e.id: e for e in models.list_models()}
    entry = entries.get(model_id)
    if entry is None:
        known = [e.id for e in entries.values() if e.kind == "finetuned"]
        hint = f" Fine-tuned models: {', '.join(known)}." if known else " There are no fine-tuned models."
        raise models.ModelError(f"Unknown model {model_id!r}.{hint}")
    if entry.kind != "finetuned":
        raise ModelNotDeletable(f"{model_id!r} is a {entry.kind} model; only fine-tuned (ft:) models can be deleted.")
    models.unregister(model_id)
    return {"id": model_id, "object": "model", "deleted": True, "path": entry.path}
