"""Background fine-tuning jobs, in three modules:

- `store`: the SQLite job table and its events, and the OpenAI-shaped job dict;
- `queue`: create, get, list, cancel, pause, resume, dispatch (spawns workers), wait;
- `worker`: the process that runs one job (`python -m trainer.jobs.worker --job-id ...`);
- `results`: a job's checkpoints (OpenAI's checkpoint objects) and its step-metrics CSV.

Callers use the names below (`from trainer import jobs; jobs.create_job(cfg)`); only the worker
and tests reach into the modules.
"""

from trainer.jobs.queue import (
           CheckpointMissing,
           cancel_job,
           create_job,
           get_job,
           list_jobs,
           pause_job,
           resume_job,
           wait_for_job,
)
from trainer.jobs.results import job_checkpoints
from trainer.jobs.store import SETTLED, TERMINAL, JobError, JobStateError, job_events

__all__ = ["SETTLED", "TERMINAL", "CheckpointMissing", "JobError", "JobStateError", "cancel_job", "create_job",
           "get_job", "job_checkpoints", "job_events", "list_jobs", "pause_job", "resume_job", "wait_for_job"]
