"""Counters about generation work, shown by `GET /v1/tunepilot/status` (and read by tests and the benchmark)."""

from __future__ import annotations

import threading
from collections import deque


class GenerationStats:
    def __init__(self, recent: int = 50):
        self._lock = threading.Lock()
        self.active = 0
        self.finished = 0
        self.cancelled = 0
        self.batches = 0
        self.batched_rows = 0
        self.recent: deque[dict] = deque(maxlen=recent)

    def started(self) -> None:
        with self._lock:
            self.active += 1

    def ended(self, model: str, finish_reason: str | None, completion_tokens: int, streamed: bool) -> None:
        with self._lock:
            self.active -= 1
            if finish_reason == "cancelled":
                self.cancelled += 1
            else:
                self.finished += 1
            self.recent.append({"model": model, "finish_reason": finish_reason,
                                "completion_tokens": completion_tokens, "streamed": streamed})

    def batch(self, rows: int) -> None:
        with self._lock:
            self.batches += 1
            self.batched_rows += rows

    def to_dict(self) -> dict:
        with self._lock:
            return {
                "active_generations": self.active,
                "finished": self.finished,
                "cancelled": self.cancelled,
                "batches": self.batches,
                "mean_batch_size": round(self.batched_rows / self.batches, 2) if self.batches else None,
                "recent": list(self.recent),
            }
