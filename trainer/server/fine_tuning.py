"""OpenAI's fine-tuning jobs API on tunepilot's job runner (`trainer.jobs`).

POST /v1/fine_tuning/jobs, GET /v1/fine_tuning/jobs (with OpenAI's `metadata[k]=v` filter),
GET /v1/fine_tuning/jobs/{id}, POST .../{id}/cancel, .../{id}/pause, .../{id}/resume,
GET .../{id}/events and GET .../{id}/checkpoints. Lists are newest first with `limit`/`after`
cursors, as in OpenAI's API. A job that succeeds registers its `fine_tuned_model`, and each kept
checkpoint its `fine_tuned_model_checkpoint`, which /v1/chat/completions accepts right away.
"""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Query, Request

from trainer import jobs
from trainer.models import registry as models
from trainer.server import file_store
from trainer.server.errors import APIError, redact_paths
from trainer.server.ft_mapping import (
    FineTuningJobRequest,
    MappingError,
    build_train_config,
    list_object,
    openai_event,
    openai_job,
    page,
    remember_job,
)
from trainer.server.generation_routes import model_not_found_message
from trainer.server.model_access import check_model_name

router = APIRouter()


def _get_job_or_404(job_id: str) -> dict:
    try:
        return jobs.get_job(job_id)
    except jobs.JobError as exc:
        raise APIError(404, f"No fine-tuning job {job_id!r} ({exc}); list jobs with GET /v1/fine_tuning/jobs.",
                       param="fine_tuning_job_id", code="job_not_found") from None


def _stored_file(file_id: str | None, param: str):
    if file_id is None:
        return None, None
    try:
        return file_store.file_path(file_id), file_store.get_file(file_id)
    except file_store.UnknownFile as exc:
        raise APIError(400, f"{param}: {exc}", param=param, code="invalid_file") from None


def _create(req: FineTuningJobRequest, allow_local_paths: bool) -> dict:
    check_model_name(req.model, allow_local_paths)
    try:
        models.resolve(req.model, provision=False, progress=False)
    except models.ModelError as exc:
        raise APIError(404, model_not_found_message(req.model, exc), param="model", code="model_not_found") from None
    training_path, training_meta = _stored_file(req.training_file, "training_file")
    validation_path, _ = _stored_file(req.validation_file, "validation_file")
    n_examples = (training_meta.get("data_check") or {}).get("n_examples") or _count_lines(training_path)
    try:
        cfg, hyperparameters = build_train_config(req, training_path, validation_path, n_examples,
                                                  allow_local_paths=allow_local_paths)
    except MappingError as exc:
        raise APIError(400, str(exc), param=exc.param, code="invalid_hyperparameters") from None
    try:
        job = jobs.create_job(cfg, suffix=req.suffix, metadata=req.metadata, integrations=req.integrations)
    except jobs.JobError as exc:
        raise APIError(400, f"The job could not be created: {redact_paths(str(exc))}", param=getattr(exc, "param", None),
                       code=getattr(exc, "code", None) or "invalid_job") from None
    remember_job(str(job["id"]), {"training_file": req.training_file, "validation_file": req.validation_file,
                                  "hyperparameters": hyperparameters, "suffix": req.suffix, "seed": cfg.training.seed})
    return openai_job(job)


def _count_lines(path) -> int | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return None


@router.post("/v1/fine_tuning/jobs")
async def create_fine_tuning_job(body: FineTuningJobRequest, request: Request) -> dict:
    return await anyio.to_thread.run_sync(_create, body, request.app.state.settings.allow_local_paths)


def metadata_filter(request: Request) -> dict[str, str] | None:
    """OpenAI's deep-object query `metadata[k]=v` (what the openai client sends) as a dict.

    `metadata=null` selects jobs without metadata; any other plain `metadata=` value is refused,
    so a filter the server cannot read is never silently dropped.
    """
    pairs = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("metadata[") and key.endswith("]") and len(key) > len("metadata[]"):
            pairs[key[len("metadata["):-1]] = value
        elif key == "metadata":
            if value != "null":
                raise APIError(400, f"metadata={value!r} is not a filter; use metadata[key]=value or metadata=null.",
                               param="metadata")
            return None
        elif key.startswith("metadata"):
            raise APIError(400, f"Query parameter {key!r} is not understood; use metadata[key]=value.", param="metadata")
    return pairs


@router.get("/v1/fine_tuning/jobs")
def list_fine_tuning_jobs(request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=100)) -> dict:
    wanted = metadata_filter(request)
    items = jobs.list_jobs(metadata=wanted or None)
    if wanted is None:  # metadata=null: only jobs without metadata
        items = [j for j in items if not j.get("metadata")]
    items = sorted(items, key=lambda j: (j.get("created_at") or 0, str(j.get("id"))), reverse=True)
    try:
        data, has_more = page(items, after, limit)
    except MappingError as exc:
        raise APIError(400, str(exc), param=exc.param) from None
    return list_object([openai_job(j) for j in data], has_more)


@router.get("/v1/fine_tuning/jobs/{job_id}")
def retrieve_fine_tuning_job(job_id: str) -> dict:
    return openai_job(_get_job_or_404(job_id))


def _change_state(job_id: str, change, verb: str, code: str) -> dict:
    """Cancel, pause or resume: a job that cannot make that move is a 409 in OpenAI's error shape."""
    _get_job_or_404(job_id)
    try:
        return openai_job(change(job_id))
    except jobs.CheckpointMissing as exc:  # only resume raises it; the job is now failed
        # The message names the folder, relative to the workspace.
        raise APIError(409, redact_paths(str(exc)), param="fine_tuning_job_id", code="checkpoint_missing") from None
    except jobs.JobStateError as exc:
        raise APIError(409, f"Cannot {verb} job {job_id!r}: {exc}", param="fine_tuning_job_id", code=code) from None


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
def cancel_fine_tuning_job(job_id: str) -> dict:
    return _change_state(job_id, jobs.cancel_job, "cancel", "job_not_cancellable")


@router.post("/v1/fine_tuning/jobs/{job_id}/pause")
def pause_fine_tuning_job(job_id: str) -> dict:
    return _change_state(job_id, jobs.pause_job, "pause", "job_not_pausable")


@router.post("/v1/fine_tuning/jobs/{job_id}/resume")
def resume_fine_tuning_job(job_id: str) -> dict:
    return _change_state(job_id, jobs.resume_job, "resume", "job_not_resumable")


@router.get("/v1/fine_tuning/jobs/{job_id}/events")
def list_fine_tuning_events(job_id: str, after: str | None = None, limit: int = Query(20, ge=1, le=1000)) -> dict:
    _get_job_or_404(job_id)
    events = list(reversed(jobs.job_events(job_id)))  # OpenAI lists events newest first
    try:
        data, has_more = page(events, after, limit)
    except MappingError as exc:
        raise APIError(400, str(exc), param=exc.param) from None
    return {"object": "list", "data": [openai_event(e) for e in data], "has_more": has_more}


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
def list_fine_tuning_checkpoints(job_id: str, after: str | None = None, limit: int = Query(10, ge=1, le=100)) -> dict:
    _get_job_or_404(job_id)
    try:
        data, has_more = page(jobs.job_checkpoints(job_id), after, limit)
    except MappingError as exc:
        raise APIError(400, str(exc), param=exc.param) from None
    return list_object(data, has_more)
