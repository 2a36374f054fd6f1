"""One rule for "is this output folder in use": the launch rule, the job queue and the recipe agree.

`trainer.planning.output_dir` decides; `rules` (output-dir-not-empty, which `jobs.create_job` runs
with its --overwrite flag) and `recipe.prepare_output_dir` ask it. No model is loaded here.
"""

from __future__ import annotations

import json

import pytest

from trainer.jobs import queue
from trainer.jobs.store import JobError
from trainer.planning import output_dir, rules
from trainer.planning.schema import TrainConfig
from trainer.training.recipe import TrainError, prepare_output_dir


def _cfg(tmp_path, out) -> TrainConfig:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n", encoding="utf-8")
    return TrainConfig.model_validate({"dataset": {"path": str(data)}, "saving": {"output_dir": str(out)}})


def _fill(out, kind: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "worker.log").write_text("log")  # the machinery's own files never count
    (out / ".staging").mkdir()
    if kind in ("interrupted", "finished"):
        (out / "checkpoint-2").mkdir()
        (out / "checkpoint-10").mkdir()
    if kind == "finished":
        (out / "job_card.json").write_text("{}")
    if kind == "foreign":
        (out / "thesis.docx").write_text("precious")
    if kind == "hidden":
        (out / ".git").mkdir()  # someone's repository is not ours to clear


CASES = {"absent": False, "own-files-only": False, "interrupted": False, "finished": True, "foreign": True,
         "hidden": True}


@pytest.mark.parametrize("kind", list(CASES))
def test_the_three_checks_agree(tmp_path, kind):
    out = tmp_path / "run"
    if kind != "absent":
        _fill(out, kind)
    clobbered = CASES[kind]
    state = output_dir.inspect(out)
    assert state.clobbered() is clobbered and not state.clobbered(overwrite=True)

    cfg = _cfg(tmp_path, out)
    rule = [r for r in rules.RULES if r.id == "output-dir-not-empty"]
    found = rules.validate(cfg, for_launch=True, rules=rule).errors
    assert bool(found) is clobbered
    assert not rules.validate(cfg, for_launch=True, rules=rule, overwrite=True).errors

    if clobbered:
        with pytest.raises(JobError, match="saving.output_dir"):
            queue._validate_config(cfg, overwrite=False)
        with pytest.raises(TrainError, match="--overwrite"):
            prepare_output_dir(out, resume=True, overwrite=False)
    else:
        queue._validate_config(cfg, overwrite=False)
        _, resume_from = prepare_output_dir(out, resume=True, overwrite=False)
        assert resume_from == (str(out / "checkpoint-10") if kind == "interrupted" else None)


def test_overwrite_clears_all_but_the_log_and_jobs_accept_it(tmp_path):
    out = tmp_path / "run"
    _fill(out, "finished")
    cfg = _cfg(tmp_path, out)
    queue._validate_config(cfg, overwrite=True)  # `jobs create --overwrite` is not refused by the launch rule
    path, resume_from = prepare_output_dir(out, resume=True, overwrite=True)
    assert resume_from is None and sorted(p.name for p in path.iterdir()) == ["worker.log"]


def test_messages_say_what_the_folder_holds(tmp_path):
    out = tmp_path / "run"
    _fill(out, "finished")
    assert "already holds a finished run" in output_dir.inspect(out).in_use_message()
    other = tmp_path / "other"
    _fill(other, "foreign")
    message = output_dir.inspect(other).in_use_message()
    assert "other files (thesis.docx)" in message and "--overwrite" in message
    assert output_dir.latest_checkpoint(out) == str(out / "checkpoint-10")
    assert output_dir.latest_checkpoint(tmp_path / "nowhere") is None
