"""Run long library calls (an eval run, an ingest) in a thread so the page stays responsive.

Streamlit reruns the page script on every interaction; work that takes minutes must not sit in
that script. A task runs in a daemon thread and reports into a `Task` object; the registry of tasks
is a `st.cache_resource` dict shared by the server process, so a page rerun (or a second browser
tab) finds the task again by id and polls it with a fragment.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st

from tunepilot.core.errors import is_user_error, one_line


@dataclass
class Task:
    id: str
    kind: str
    state: str = "running"  # running | done | failed
    done: int = 0
    total: int = 0
    note: str = ""
    result: Any = None
    error: str = ""
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def progress(self, done: int, total: int, note: str = "") -> None:
        """Callback handed to the library: how far the work is."""
        self.done, self.total, self.note = int(done), int(total), note

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total else 0.0


@st.cache_resource
def _registry() -> dict[str, Task]:
    return {}


# Finished tasks are kept this long for the pages that still show their outcome, then dropped.
KEEP_FINISHED_SECONDS = 6 * 3600


def _forget_old(registry: dict[str, Task]) -> None:
    cutoff = time.time() - KEEP_FINISHED_SECONDS
    for task_id in [i for i, t in registry.items() if t.finished_at and t.finished_at < cutoff]:
        registry.pop(task_id, None)


def start(kind: str, work: Callable[[Task], Any]) -> Task:
    """Start `work(task)` in a thread; its return value becomes `task.result`."""
    registry = _registry()
    _forget_old(registry)
    task = Task(id=uuid.uuid4().hex[:12], kind=kind)
    registry[task.id] = task

    def run() -> None:
        try:
            task.result = work(task)
            task.state = "done"
        except Exception as exc:
            # A user mistake shows as its one line; a bug keeps its traceback for the page to show.
            detail = "" if is_user_error(exc) else f"\n\n{traceback.format_exc()}"
            task.error, task.state = one_line(exc) + detail, "failed"
        finally:
            task.finished_at = time.time()

    threading.Thread(target=run, name=f"tunepilot-{kind}-{task.id}", daemon=True).start()
    return task


def get(task_id: str | None) -> Task | None:
    return _registry().get(task_id) if task_id else None


def show(task: Task | None, follow: Callable[[], None], done: Callable[[Any], None]) -> None:
    """The one way a page shows a task: `follow()` polls it while it runs, a failure is one error
    line, and `done(result)` renders what it produced."""
    if task is None:
        return
    if task.state == "running":
        follow()
    elif task.state == "failed":
        st.error(task.error, icon="⚠️")
    else:
        done(task.result)
