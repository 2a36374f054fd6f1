"""Is this output folder in use, and would a new run clobber it? One rule set for every caller.

The launch rules (`trainer.planning.rules`, rule `output-dir-not-empty`), the job queue (before it
queues a job) and the recipe (before it trains) all ask this module, so a folder that one accepts
the others accept too. It lives in the planning layer because that is the lowest of the three.

The rules:
- The job machinery's own files (`OWN_FILES`: the checkpoint staging folder, the worker's log)
  never make a folder "used"; everything else does, hidden files included (a `.git` is someone's).
- A used folder that holds a complete checkpoint (`checkpoint-N/`) but no job card is an
  interrupted run: training continues from its newest checkpoint, so it is not clobbered.
- A folder with a job card holds a finished run; anything else is a different run. Both are
  clobbered by a new run unless the caller overwrites on purpose (`--overwrite`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

STAGING_DIRNAME = ".staging"  # where checkpoints and final outputs are written before the rename
WORKER_LOG = "worker.log"  # a background job's log, created before training starts
OWN_FILES = frozenset({STAGING_DIRNAME, WORKER_LOG})
JOB_CARD = "job_card.json"  # written last by a run that finished
# transformers' own pattern for the folders `Trainer` writes (trainer_utils.PREFIX_CHECKPOINT_DIR).
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class OutputDirState:
    """What an output folder holds, as far as starting a run there is concerned."""

    path: Path
    entries: tuple[str, ...]  # names in it other than OWN_FILES
    checkpoint: str | None  # the newest checkpoint folder, when there is one
    finished: bool  # a job card is there

    @property
    def used(self) -> bool:
        return bool(self.entries)

    @property
    def resumable(self) -> bool:
        """An interrupted run: training continues from `checkpoint` instead of starting over."""
        return self.used and self.checkpoint is not None and not self.finished

    @property
    def holds(self) -> str:
        """What a new run would overwrite, for messages: "a finished run" or the files it found."""
        if self.finished:
            return "a finished run"
        names = ", ".join(self.entries[:3]) + (", ..." if len(self.entries) > 3 else "")
        return f"other files ({names})"

    def clobbered(self, overwrite: bool = False) -> bool:
        """True when starting a run here would destroy something the user has not agreed to lose."""
        return self.used and not self.resumable and not overwrite

    def in_use_message(self) -> str:
        return (f"Output folder {self.path} already holds {self.holds}; "
                "choose another saving.output_dir or pass --overwrite.")


def latest_checkpoint(folder: str | Path) -> str | None:
    """The newest `checkpoint-N` folder (by N); staging leftovers of a failed save are not looked at."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    steps = {int(m.group(1)): p for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()}
    return str(steps[max(steps)]) if steps else None


def inspect(folder: str | Path) -> OutputDirState:
    """The state of `folder` (which need not exist) under the rules above."""
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        return OutputDirState(path, (), None, False)
    entries = tuple(sorted(p.name for p in path.iterdir() if p.name not in OWN_FILES))
    return OutputDirState(path, entries, latest_checkpoint(path), (path / JOB_CARD).exists())
