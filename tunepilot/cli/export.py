"""`tunepilot export`: a model (base, fine-tune or job) as a GGUF file for llama.cpp / Ollama."""

from __future__ import annotations

import typer

from tunepilot.cli.common import emit_json, user_errors
from tunepilot.core.progress import stderr_console


def export_cmd(
    model: str = typer.Argument(..., help="gemma-3-270m, an ft: model id, a job id (ftjob-...) or a model folder."),
    fmt: str = typer.Option("gguf", "--format", help="Export format (gguf)."),
    dtype: str = typer.Option("f16", "--dtype", help="Weights in the file: f16, bf16 or q8_0."),
    out: str = typer.Option(..., "--out", help="Folder to write model.gguf (and the Modelfile) into."),
    ollama: bool = typer.Option(False, "--ollama", help="Also write an Ollama Modelfile with the trained chat format."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write MODEL as GGUF, load it back with transformers and report the largest logit difference."""
    from trainer.training.export import ExportError, export_gguf

    with user_errors():
        if fmt != "gguf":
            raise ExportError(f"Unknown export format {fmt!r}; the supported format is gguf.")
        with stderr_console().status(f"Exporting {model} to GGUF ({dtype}) and checking it..."):
            result = export_gguf(_model_of_job(model), out, dtype=dtype, ollama=ollama, overwrite=overwrite)
    if as_json:
        emit_json(result.to_dict())
        return
    typer.echo(f"GGUF: {result.gguf_path} ({result.size_bytes / 1e6:.1f} MB, {result.tensors} tensors, {result.dtype})")
    typer.echo(f"max |logit difference| vs the source model on {result.probes} probe prompts: {result.max_logit_diff:.3e} "
               f"(bf16 rounding of the same model: {result.bf16_rounding_logit_diff:.3e})")
    if result.modelfile:
        typer.echo(f"Ollama: cd {result.output_dir} && ollama create my-model -f Modelfile")


def _model_of_job(ref: str) -> str:
    """A job id -> the model it produced; anything else as given."""
    if not ref.strip().startswith("ftjob-"):
        return ref
    from trainer import jobs
    from trainer.training.export import ExportError

    job = jobs.get_job(ref.strip())
    if job["status"] != "succeeded" or not job.get("fine_tuned_model"):
        raise ExportError(f"Job {ref} is {job['status']}; only a succeeded job has a model to export.")
    return job["fine_tuned_model"]


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
