"""Background fine-tuning jobs, in three modules:

- `store`: the SQLite job table and its events, and the OpenAI-shaped job dict;
- `queue`: create, get, list, cancel, resume, dispatch (spawns workers), wait;
- `worker`: the process that runs one job (`python -m trainer.jobs.worker --job-id ...`).

Callers use the names below (`from trainer import jobs; jobs.create_job(cfg)`); only the worker
and tests reach into the modules.
"""

from trainer.jobs.queue import (
           cancel_job,
           create_job,
           get_job,
           list_jobs,
           resume_job,
           wait_for_job,
)
from trainer.jobs.store import TERMINAL, JobError, JobStateError, job_events

__all__ = ["TERMINAL", "JobError", "JobStateError", "cancel_job", "create_job", "get_job", "job_events",
           "list_jobs", "resume_job", "wait_for_job"]
