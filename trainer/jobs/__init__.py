"""Background fine-tuning jobs: the queue (create/cancel/resume/dispatch, OpenAI job objects) and
the worker process that runs one job."""
