"""Load a training config file for running, and the module entry point for multi-process runs.

`python -m trainer.run_config CONFIG [--output-dir DIR] [--overwrite]` trains in the current process;
`accelerate launch -m trainer.run_config CONFIG` runs the same recipe data-parallel on several
devices (or CPU processes), since the recipe's loop is transformers' Trainer. Once training
succeeds, the main process alone finishes the run (`trainer.training.finish.finish_run`: registers
the `ft:` model id and merges when `saving.merge_after_training` asks), like `tunepilot train`.

Relative dataset paths in a config are resolved against the config file's folder when the file is
there (so a config and its data can travel together), else against the current directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.planning.schema import TrainConfig
from tunepilot.core.errors import UserError


class RunConfigError(UserError, ValueError):
    """The config file cannot be used; the message lists its problems."""


def parse_config_file(path: str | Path) -> TrainConfig:
    """Parse and type-check a config file, reporting every problem on one line (trainer.planning.config_io)."""
    from trainer.planning.config_io import ConfigError, load_config

    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"Config file not found: {p}")
    _refuse_peer_config(p)
    try:
        return load_config(p)
    except ConfigError as exc:
        problems = "; ".join(f"{q['loc']}: {q['message']}" if q.get("loc") else q["message"] for q in exc.problems)
        raise RunConfigError(f"{p.name}: {problems}") from None


def _refuse_peer_config(p: Path) -> None:
    """A LLaMA-Factory or axolotl file gets one line pointing at `tunepilot config import`, not a wall of unknown keys."""
    from trainer.planning.config_io import ConfigError, read_config_data
    from trainer.planning.peer_configs import peer_format_problem

    try:
        problem = peer_format_problem(read_config_data(p), p.name)
    except ConfigError:
        return  # load_config reports the syntax error
    if problem is not None:
        raise RunConfigError(problem["message"])


def resolve_paths(cfg: TrainConfig, config_dir: Path | None) -> TrainConfig:
    """Absolute dataset and output paths, so a background worker in another folder finds them."""
    cfg = cfg.model_copy(deep=True)

    def absolute(value: str | None) -> str | None:
        if not value:
            return value
        p = Path(value).expanduser()
        if p.is_absolute():
            return str(p)
        if config_dir is not None and (config_dir / p).exists():
            return str((config_dir / p).resolve())
        return str(p.resolve())

    ds = cfg.dataset
    from trainer.data import dataset_info

    for key in ("path", "eval_path"):
        value = getattr(ds, key)
        if value and not dataset_info.looks_like_names(value):  # names of a dataset_info.json stay names
            setattr(ds, key, absolute(value))
    registry = dataset_info.find_registry(ds.dataset_dir, base=config_dir) if (
        dataset_info.looks_like_names(ds.path) or dataset_info.looks_like_names(ds.eval_path)) else None
    if registry is not None:
        ds.dataset_dir = str(registry.parent.resolve())
    if cfg.saving.output_dir:
        cfg.saving.output_dir = str(Path(cfg.saving.output_dir).expanduser().resolve())
    base = cfg.model.base_model
    if base.startswith((".", "~")) or (config_dir is not None and (config_dir / base).is_dir() and not Path(base).is_absolute()):
        cfg.model.base_model = absolute(base)
    return cfg


def load_run_config(path: str | Path) -> TrainConfig:
    p = Path(path).expanduser()
    return resolve_paths(parse_config_file(p), p.resolve().parent)


def default_output_dir(run_id: str) -> Path:
    from tunepilot.core import workspace

    return workspace.runs_dir() / run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.run_config", description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--skip-bad-rows", action="store_true")
    args = parser.parse_args(argv)

    from trainer.training.finish import fine_tuned_model_id, finish_run, new_run_id
    from trainer.training.recipe import train
    from tunepilot.core.errors import is_user_error, one_line

    try:
        cfg = load_run_config(args.config)
        # Every process must pick the same folder, so the default is named after the config, not the time.
        out = args.output_dir or cfg.saving.output_dir or str(default_output_dir(f"run-{Path(args.config).stem}"))
        result = train(cfg, out, on_event=_print_event, overwrite=args.overwrite, skip_bad_rows=args.skip_bad_rows)
        finished = None
        if result.status == "succeeded" and _is_main_process():
            finished = finish_run(result, cfg, fine_tuned_model_id(cfg, new_run_id()), on_event=_print_event)
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    _print_event({"message": f"{result.status}: {result.final_path or result.output_dir}"})
    if finished is not None:
        _print_event({"message": f"model id: {finished.fine_tuned_model}"})
    return 0


def _is_main_process() -> bool:
    """True in a plain run and in the first process of an `accelerate launch` (RANK 0)."""
    import os

    return os.environ.get("RANK", "0") == "0"


def _print_event(e: dict) -> None:
    # Under accelerate every process runs this; only the first one prints.
    if _is_main_process():
        print(e["message"], file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
