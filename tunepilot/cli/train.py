"""CLI for the trainer: `train`, `jobs ...`, `data check`, `merge`, `demo`.

Thin by design: every command calls one library function (trainer.training.recipe + finish / trainer.jobs /
trainer.data.check / trainer.training.merge / tunepilot.demo) and only formats its result. Progress goes to
stderr so `--json` leaves exactly one JSON document on stdout.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Optional

import typer

from tunepilot.cli.common import emit_json, user_errors
from tunepilot.core.progress import progress_bar, stderr_console

jobs_app = typer.Typer(help="Background fine-tuning jobs (create, list, get, events, checkpoints, cancel, pause, resume).",
                       no_args_is_help=True)
data_app = typer.Typer(help="Training data tools.", no_args_is_help=True)

# ---------------------------------------------------------------- train (foreground)

class _ProgressSink:
    """Turns recipe events into a rich progress bar (stderr) and short log lines."""

    def __init__(self, quiet: bool):
        self.console = stderr_console()
        self.progress = progress_bar(disable=quiet, console=self.console)
        self.task = None
        self.quiet = quiet

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, e: dict) -> None:
        data = e.get("data") or {}
        if e["message"].startswith("Training started"):
            self.task = self.progress.add_task("training", total=data.get("total_steps"), completed=data.get("start_step", 0))
        if e["type"] == "metrics" and self.task is not None and "loss" in data:
            desc = f"loss {data['loss']:.3f} · {data['tokens_per_second']:.0f} tok/s · {data['peak_memory_mb']:.0f} MB"
            self.progress.update(self.task, completed=data["step"], description=desc)
            # A bar cannot redraw in a log file; print a line every ~5% of the steps instead.
            total = data.get("total_steps") or 1
            if not self.quiet and not self.console.is_terminal and data["step"] % max(1, total // 20) == 0:
                self.console.print(f"step {data['step']}/{total} {desc}", highlight=False)
            return
        if not self.quiet and e["type"] != "metrics":
            style = {"warning": "yellow", "error": "red"}.get(e.get("level"), "dim")
            self.progress.console.print(f"[{style}]{e['message']}[/]", markup=True, highlight=False)


def run_foreground(cfg, output_dir: Optional[str], overwrite: bool, skip_bad_rows: bool, suffix: Optional[str],
                   quiet: bool, run_prefix: str = "run") -> dict:
    """Train in this process with a progress bar, finish the run (register, merge if asked), return a summary dict."""
    from trainer.run_config import default_output_dir
    from trainer.training.finish import fine_tuned_model_id, finish_run, new_run_id
    from trainer.training.recipe import train

    run_id = new_run_id(run_prefix)
    out = output_dir or cfg.saving.output_dir or str(default_output_dir(run_id))
    with _ProgressSink(quiet) as sink:
        result = train(cfg, out, on_event=sink, overwrite=overwrite, skip_bad_rows=skip_bad_rows)
    summary = result.to_dict()
    if result.status != "succeeded":
        return summary
    merging = cfg.saving.merge_after_training and result.is_adapter
    # After the progress bar has closed: rich shows one live display at a time.
    with sink.console.status("Merging adapter into the base model...") if merging else nullcontext():
        finished = finish_run(result, cfg, fine_tuned_model_id(cfg, run_id, suffix=suffix), on_event=sink)
    summary["fine_tuned_model"] = finished.fine_tuned_model
    if finished.merged is not None:
        summary["merged"] = finished.merged
    return summary


def train_cmd(
    config: str = typer.Argument(..., help="Training config (TOML or YAML)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Train on the good rows and record the bad ones."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", help="Where outputs go (overrides saving.output_dir)."),
    suffix: Optional[str] = typer.Option(None, "--suffix", help="Name part of the fine-tuned model id."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (progress stays on stderr)."),
) -> None:
    """Train a config in the foreground with a progress bar (Ctrl-C stops; run again to resume)."""
    from trainer.run_config import load_run_config

    with user_errors():
        cfg = load_run_config(config)
        summary = run_foreground(cfg, output_dir, overwrite, skip_bad_rows, suffix, quiet=False)
    if as_json:
        emit_json(summary)
        return
    typer.echo(f"{summary['status']}: {summary['final_path'] or summary['output_dir']}")
    if summary.get("merged"):
        typer.echo(f"merged model: {summary['merged']['output_dir']}")
    if summary.get("fine_tuned_model"):
        typer.echo(f"model id: {summary['fine_tuned_model']}  (try: tunepilot chat-model {summary['fine_tuned_model']} --prompt ...)")


# ---------------------------------------------------------------- jobs

def _print_job(job: dict) -> None:
    typer.echo(f"{job['id']}  {job['status']}")
    for key in ("model", "fine_tuned_model", "output_dir", "trained_tokens"):
        if job.get(key) is not None:
            typer.echo(f"  {key}: {job[key]}")
    if job.get("error"):
        typer.echo(f"  error: {job['error']['message']}")


@jobs_app.command("create")
def jobs_create(
    config: str = typer.Argument(..., help="Training config (TOML or YAML)."),
    suffix: Optional[str] = typer.Option(None, "--suffix", help="Name part of the fine-tuned model id ft:<base>:<suffix>:<job-id>."),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Start even if some rows are bad; they are skipped and recorded."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
    metadata: list[str] = typer.Option([], "--metadata", help="KEY=VALUE stored with the job (repeatable, up to 16)."),
    as_json: bool = typer.Option(False, "--json", help="Print the job as JSON."),
) -> None:
    """Validate a config and its data, then train it in a background process."""
    from trainer import jobs
    from trainer.run_config import load_run_config

    with user_errors():
        job = jobs.create_job(load_run_config(config), suffix=suffix, skip_bad_rows=skip_bad_rows, overwrite=overwrite,
                              metadata=_pairs(metadata, "--metadata") or None)
    if as_json:
        emit_json(job)
    else:
        _print_job(job)
        typer.echo(f"follow it with: tunepilot jobs events {job['id']} --follow")


def _pairs(values: list[str], option: str) -> dict[str, str]:
    """KEY=VALUE options as a dict; anything else is a one-line error naming it."""
    from tunepilot.core.errors import UserError

    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{option} {item!r} is not KEY=VALUE.")
        out[key] = value
    return out


@jobs_app.command("list")
def jobs_list(
    limit: Optional[int] = typer.Option(None, "--limit", help="Show at most this many (newest first)."),
    metadata: list[str] = typer.Option([], "--metadata", help="Only jobs with this KEY=VALUE metadata (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List jobs, newest first."""
    from trainer import jobs

    with user_errors():
        items = jobs.list_jobs(limit=limit, metadata=_pairs(metadata, "--metadata") or None)
    if as_json:
        emit_json({"object": "list", "data": items})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "status", "model", "fine_tuned_model", "created")
    for j in items:
        table.add_row(j["id"], j["status"], j["model"], j["fine_tuned_model"] or "",
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(j["created_at"])))
    Console().print(table)


@jobs_app.command("get")
def jobs_get(job_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show one job."""
    from trainer import jobs

    with user_errors():
        job = jobs.get_job(job_id)
    emit_json(job) if as_json else _print_job(job)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: str = typer.Argument(...),
    wait: float = typer.Option(30.0, "--wait", help="Seconds to wait for a running worker to save and stop."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Cancel a queued, running or paused job (a running one saves a checkpoint first, so it can be resumed)."""
    from trainer import jobs

    with user_errors():
        job = jobs.cancel_job(job_id, wait=wait)
    emit_json(job) if as_json else _print_job(job)


@jobs_app.command("pause")
def jobs_pause(
    job_id: str = typer.Argument(...),
    wait: float = typer.Option(30.0, "--wait", help="Seconds to wait for a running worker to save and stop."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Pause a job: it saves a checkpoint at the end of the current step and stops until `jobs resume`."""
    from trainer import jobs

    with user_errors():
        job = jobs.pause_job(job_id, wait=wait)
    emit_json(job) if as_json else _print_job(job)


@jobs_app.command("checkpoints")
def jobs_checkpoints(job_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A job's kept checkpoints, newest first; each one's model id works in chat-model, eval, serve and merge."""
    from trainer import jobs

    with user_errors():
        items = jobs.job_checkpoints(job_id)
    if as_json:
        emit_json({"object": "list", "data": items, "has_more": False,
                   "first_id": items[0]["id"] if items else None, "last_id": items[-1]["id"] if items else None})
        return
    if not items:
        typer.echo(f"{job_id} has no checkpoints yet (one is saved every saving.save_every_n_steps steps and on pause).")
        return
    from rich.console import Console
    from rich.table import Table

    def num(value) -> str:
        return "" if value is None else f"{value:.4f}"

    table = Table("step", "model id", "train loss", "train acc", "valid loss", "valid acc")
    for c in items:
        m = c["metrics"]
        table.add_row(str(c["step_number"]), c["fine_tuned_model_checkpoint"], num(m["train_loss"]),
                      num(m["train_mean_token_accuracy"]), num(m["valid_loss"]), num(m["valid_mean_token_accuracy"]))
    Console().print(table)


@jobs_app.command("resume")
def jobs_resume(job_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Continue a paused, failed or cancelled job from its latest checkpoint."""
    from trainer import jobs

    with user_errors():
        job = jobs.resume_job(job_id)
    emit_json(job) if as_json else _print_job(job)


@jobs_app.command("events")
def jobs_events(
    job_id: str = typer.Argument(...),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events until the job finishes."),
    after: Optional[str] = typer.Option(None, "--after", help="Only events after this event id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with --follow: once the job has finished)."),
) -> None:
    """Show a job's events (messages, metrics, samples)."""
    from trainer import jobs

    collected: list[dict] = []
    with user_errors():
        last = after
        while True:
            batch = jobs.job_events(job_id, after=last)
            collected += batch
            if not as_json:
                for e in batch:
                    stamp = time.strftime("%H:%M:%S", time.localtime(e["created_at"]))
                    typer.echo(f"{stamp} [{e['level']}] {e['message']}")
            if batch:
                last = batch[-1]["id"]
            if not follow or jobs.get_job(job_id)["status"] in jobs.SETTLED and not batch:
                break
            time.sleep(1.0)
    if as_json:
        emit_json({"object": "list", "data": collected, "has_more": False})


# ---------------------------------------------------------------- data check

@data_app.command("check")
def data_check(
    file: str = typer.Argument(..., help="JSON, JSONL or CSV training file."),
    max_seq_length: int = typer.Option(1024, "--max-seq-length", help="Examples longer than this are reported."),
    eval_file: Optional[str] = typer.Option(None, "--eval", help="Eval file to check for overlap with the training file."),
    fmt: str = typer.Option("auto", "--format", help="auto, chat, alpaca, sharegpt, prompt_completion or text."),
    model: Optional[str] = typer.Option(None, "--model", help="Count tokens with this model's tokenizer (else an approximation)."),
    stage: str = typer.Option("sft", "--stage", help="The method.stage that will train on it: sft, dpo, orpo or kto."),
    dataset_dir: Optional[str] = typer.Option(None, "--dataset-dir", help="Folder of the dataset_info.json when FILE names its entries (default: data/, then .)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check a dataset before training: its kind, bad lines, fields, role order, lengths, duplicates, tokens, steps."""
    from trainer.data.check import check_dataset

    with user_errors():
        report = check_dataset(file, max_seq_length=max_seq_length, tokenizer=model, eval_path=eval_file, fmt=fmt,
                               stage=stage, dataset_dir=dataset_dir)
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(2)


def _print_report(report) -> None:
    if report.fatal:
        typer.echo(f"error: {report.fatal}", err=True)
        return
    typer.echo(f"{report.path}: {report.n_examples} usable of {report.n_rows} rows ({report.kind} data, "
               f"{report.format}, {report.encoding})")
    for name, meaning in report.fields.items():
        typer.echo(f"  field {name}: {meaning}")
    for err in report.errors:
        typer.echo(f"  line {err['line']}: {err['message']}")
    t = report.tokens
    if t.get("total"):
        typer.echo(f"  tokens: {t['total']:,} total, {t['assistant']:,} trained on; per example min {t['min']} / "
                   f"mean {t['mean']} / p95 {t['p95']} / max {t['max']} ({t['counted_with']})")
    s = report.estimated_steps
    typer.echo(f"  estimated steps: {s['total']} ({s['steps_per_epoch']} per epoch at batch {s['batch_size']})")
    for w in report.warnings:
        typer.echo(f"  warning: {w}")
    if report.eval:
        typer.echo(f"  eval: {report.eval['n_examples']} examples, {len(report.eval['overlap'])} overlapping with training")
        for err in report.eval["errors"]:
            typer.echo(f"  eval line {err['line']}: {err['message']}")
    typer.echo("OK" if report.ok else "NOT OK: fix the lines above (or train with --skip-bad-rows)")


# ---------------------------------------------------------------- merge and demo

def merge_cmd(
    job_or_dir: str = typer.Argument(..., help="Job id, ft: model id, run folder or adapter folder."),
    out: Optional[str] = typer.Option(None, "--out", help="Folder for the merged model (default: merged/ in the run folder)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Merge a LoRA adapter into its base model and check the logits still match."""
    from trainer.training.merge import merge

    with user_errors():
        source = _merge_source(job_or_dir)
        with stderr_console().status("Merging adapter into the base model..."):
            result = merge(source, out=out)
    if as_json:
        emit_json(result)
    else:
        typer.echo(f"merged model: {result['output_dir']}")
        typer.echo(f"max |logit difference| vs adapter+base on {result['probes']} probe prompts: {result['max_logit_diff']:.3e}")


def _merge_source(ref: str) -> str:
    """A job id -> its run folder (only a succeeded job has an adapter); anything else as given."""
    ref = ref.strip()
    if not ref.startswith("ftjob-"):
        return ref
    from trainer import jobs
    from trainer.training.merge import MergeError

    job = jobs.get_job(ref)
    if job["status"] != "succeeded":
        raise MergeError(f"Job {ref} is {job['status']}; only a succeeded job has an adapter to merge.")
    return job["output_dir"]


def demo_cmd(
    epochs: Optional[float] = typer.Option(None, "--epochs", help="Override the demo config's epochs."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", help="Where the demo run goes."),
    as_json: bool = typer.Option(False, "--json", help="Print the demo's result as JSON."),
) -> None:
    """Fine-tune the default model on the bundled role-play set, chat with it, and evaluate base vs fine-tuned."""
    from tunepilot.demo import run_demo

    with user_errors():
        result = run_demo(epochs=epochs, output_dir=output_dir, quiet=as_json,
                          train_fn=lambda cfg, out: run_foreground(cfg, out, False, False, "persona", quiet=as_json, run_prefix="demo"),
                          echo=(lambda _m: None) if as_json else typer.echo)
    if as_json:
        emit_json(result)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root `tunepilot` app."""
    app.command("train")(train_cmd)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(data_app, name="data")
    app.command("merge")(merge_cmd)
    app.command("demo")(demo_cmd)


