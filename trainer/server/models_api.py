"""GET /v1/models, GET /v1/models/{id} and DELETE /v1/models/{id} in OpenAI's shapes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from trainer.models import registry as models
from trainer.server.auth import require_owner_key
from trainer.server.errors import APIError, redact_paths
from trainer.server.model_admin import ModelNotDeletable, delete_finetuned_model

router = APIRouter()

_OWNER = {"builtin": "tunepilot", "local": "user", "finetuned": "user", "hub": "user"}


def model_object(entry: models.ModelEntry) -> dict:
    obj = {"id": entry.id, "object": "model", "created": int(entry.created_at), "owned_by": _OWNER.get(entry.kind, "user"),
           # tunepilot extensions; OpenAI clients ignore fields they do not know
           "kind": entry.kind, "base_model": entry.base_model}
    if entry.kind == "builtin":
        obj["provisioned"] = bool(entry.extra.get("provisioned"))
    return obj


@router.get("/v1/models")
def list_models() -> dict:
    return {"object": "list", "data": [model_object(e) for e in models.list_models()]}


@router.get("/v1/models/{model_id:path}")
def retrieve_model(model_id: str) -> dict:
    for entry in models.list_models():
        if entry.id == model_id:
            return model_object(entry)
    ids = ", ".join(e.id for e in models.list_models())
    raise APIError(404, f"The model {model_id!r} does not exist. Available models: {ids}.",
                   param="model", code="model_not_found")


@router.delete("/v1/models/{model_id:path}", dependencies=[Depends(require_owner_key)])
def delete_model(model_id: str, request: Request) -> dict:
    try:
        result = delete_finetuned_model(model_id)
    except models.ModelError as exc:
        raise APIError(404, redact_paths(str(exc)), param="model", code="model_not_found") from None
    except ModelNotDeletable as exc:
        raise APIError(400, redact_paths(str(exc)), param="model", code="model_not_deletable") from None
    request.app.state.pool.drop(model_id)
    return {"id": result["id"], "object": "model", "deleted": True}
