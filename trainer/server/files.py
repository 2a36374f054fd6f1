"""POST/GET/DELETE /v1/files: training-file uploads (multipart, purpose fine-tune), checked on arrival."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import anyio
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import FileResponse

from trainer.server import file_store
from trainer.server.errors import APIError

router = APIRouter()

_CHUNK = 1024 * 1024


@router.post("/v1/files")
async def upload_file(file: UploadFile = File(...), purpose: str = Form(...)) -> dict:
    if purpose not in file_store.PURPOSES:
        raise APIError(400, f"purpose {purpose!r} is not supported; use 'fine-tune'.", param="purpose")
    try:
        staged = file_store.staging_path(file.filename or "")
    except file_store.FileStoreError as exc:
        raise APIError(400, str(exc), param="file", code="invalid_file") from None
    with staged.open("wb") as out:
        while chunk := await file.read(_CHUNK):
            out.write(chunk)
    try:
        # The data check tokenizes nothing by default but reads the whole file: keep it off the loop.
        return await anyio.to_thread.run_sync(file_store.check_and_store, staged, file.filename or staged.name, purpose)
    except file_store.InvalidTrainingFile as exc:
        raise APIError(400, str(exc), param="file", code="invalid_training_file") from None
    except file_store.FileStoreError as exc:
        raise APIError(400, str(exc), param="file", code="invalid_file") from None


@router.get("/v1/files")
def list_files(purpose: str | None = None) -> dict:
    return {"object": "list", "data": file_store.list_files(purpose), "has_more": False}


@contextmanager
def _known_file() -> Iterator[None]:
    """An unknown file id is OpenAI's 404 `file_not_found`."""
    try:
        yield
    except file_store.UnknownFile as exc:
        raise APIError(404, str(exc), param="file_id", code="file_not_found") from None


@router.get("/v1/files/{file_id}")
def retrieve_file(file_id: str) -> dict:
    with _known_file():
        return file_store.get_file(file_id)


@router.get("/v1/files/{file_id}/content")
def file_content(file_id: str):
    with _known_file():
        path = file_store.file_path(file_id)
    return FileResponse(path, media_type="application/octet-stream")


@router.delete("/v1/files/{file_id}")
def delete_file(file_id: str) -> dict:
    with _known_file():
        return file_store.delete_file(file_id)
