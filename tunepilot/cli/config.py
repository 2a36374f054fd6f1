"""`tunepilot config ...`: validate, estimate, schema, init from a preset, diffusion (kohya) configs,
and `tunepilot config --from-text TEXT` (the assistant's conversation-to-config path).

A thin layer over trainer.planning.config_io (reading and writing files) / trainer.planning.findings
(schema problems + rule findings) / trainer.planning.memory / trainer.planning.presets / trainer.planning.diffusion. Invalid configs and user mistakes exit with code 2; `--json` prints exactly one
JSON document on stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tunepilot.cli.common import USER_ERROR_EXIT, emit_json, fail, user_errors

config_app = typer.Typer(help="Training configs: validate, estimate memory, presets, JSON Schema, diffusion (kohya) configs.",
                         no_args_is_help=False)
diffusion_app = typer.Typer(help="Diffusion LoRA configs for kohya sd-scripts (SD 1.5 / SD 2.x / SDXL / Flux): init, validate, "
                            "estimate, import kohya files, export.",
                            no_args_is_help=True)
config_app.add_typer(diffusion_app, name="diffusion")


def _fail_problems(problems: list[dict]) -> None:
    for p in problems:
        where = f"{p['loc']}: " if p.get("loc") else ""
        typer.echo(f"error: {where}{p['message']}", err=True)
    raise typer.Exit(USER_ERROR_EXIT)


def _print_findings(report: dict, title: str) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    errors, warnings = report["errors"], report["warnings"]
    status = "[red]invalid[/red]" if errors else "[green]valid[/green]"
    console.print(f"{title}: {status} ({len(errors)} errors, {len(warnings)} warnings)")
    for f in errors + warnings:
        tag = "[red]error  [/red]" if f["severity"] == "error" else "[yellow]warning[/yellow]"
        where = f" [dim]({f['source']} § {f['heading']})[/dim]" if f.get("source") else ""
        console.print(f"  {tag} [bold]{f['field'] or '-'}[/bold] [{f['rule_id']}] {f['message']}{where}")


def _print_estimate(est: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Memory estimate: {est.get('model', '')} ({est.get('device', '')}, {est.get('dtype', '')})")
    table.add_column("part")
    table.add_column("GB", justify="right")
    for name, gb in est["breakdown"].items():
        table.add_row(name, f"{gb:.2f}")
    table.add_row("[bold]total[/bold]", f"[bold]{est['total_gb']:.2f}[/bold]")
    console = Console(highlight=False)
    console.print(table)
    if est["device_memory_gb"] is not None:
        verdict = "[green]fits[/green]" if est["fits"] else "[red]does not fit[/red]"
        console.print(f"device memory {est['device_memory_gb']} GB: {verdict}; largest batch size that fits: {est['max_batch_size']}")
    for note in est.get("notes", []):
        console.print(f"[dim]{note}[/dim]")


def _write_config(config, out: Path) -> Path:
    from trainer.planning.config_io import ConfigError, dump_config

    try:
        return dump_config(config, out)
    except ConfigError as exc:
        _fail_problems(exc.problems)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    raise AssertionError("unreachable")


@config_app.callback(invoke_without_command=True)
def config_main(
    ctx: typer.Context,
    from_text: Optional[list[str]] = typer.Option(
        None, "--from-text",
        help="Describe the run in words; get a validated config. Repeat it for the turns of one conversation (later turns edit the draft)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the config here (.toml or .yaml)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Training configs. With --from-text, turn a description into a validated config."""
    if ctx.invoked_subcommand is not None:
        return
    if not from_text:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    from assistant.config_from_text import config_from_text

    with user_errors():
        # Repeated --from-text flags are the turns of one conversation.
        result = config_from_text(from_text[0] if len(from_text) == 1 else list(from_text))
        if out is not None:
            from trainer.planning.config_io import ConfigError, parse_config

            try:
                config = parse_config(result["config"])
            except ConfigError as exc:
                _fail_problems(exc.problems)
            path = _write_config(config, out)
            result = {**result, "path": str(path)}
        if json_out:
            emit_json(result)
            return
        from trainer.planning.config_io import dumps_data

        typer.echo(dumps_data(result["config"], "toml"))
        _print_findings(result["validation"], "validation")
        if result.get("memory_estimate"):
            _print_estimate({"breakdown": {}, "notes": [], **result["memory_estimate"]})
        for item in result.get("explanations", []):
            typer.echo(f"- {item['field']} = {item['value']}: {item['reason']} ({item.get('source', '')})")
        if result.get("reply"):
            typer.echo(result["reply"])
        if out is not None:
            typer.echo(f"wrote {result['path']}")


@config_app.command("validate")
def validate_cmd(
    file: Path = typer.Argument(..., help="Config file (.toml, .yaml, .yml or .json)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
    for_launch: bool = typer.Option(False, "--for-launch", help="Also check the dataset and output folder on this machine."),
) -> None:
    """Check a config: schema problems and every rule, each with the doc passage it comes from."""
    from trainer.planning.findings import check_config

    with user_errors():
        report = check_config(file, for_launch=for_launch).to_dict()
        report["ok"] = not report["errors"]
        if json_out:
            emit_json(report)
        else:
            _print_findings(report, str(file))
        if report["errors"]:
            raise typer.Exit(USER_ERROR_EXIT)


@config_app.command("estimate")
def estimate_cmd(
    file: Path = typer.Argument(..., help="Config file."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Estimate peak training memory and whether it fits the target device."""
    from trainer.planning.config_io import ConfigError, load_config
    from trainer.planning.memory import estimate

    with user_errors():
        try:
            est = estimate(load_config(file)).to_dict()
        except ConfigError as exc:
            _fail_problems(exc.problems)
        if json_out:
            emit_json(est)
        else:
            _print_estimate(est)


@config_app.command("schema")
def schema_cmd(
    diffusion: bool = typer.Option(False, "--diffusion", help="The kohya diffusion config schema instead."),
) -> None:
    """Print the JSON Schema of the training config."""
    if diffusion:
        from trainer.planning.diffusion import diffusion_json_schema

        emit_json(diffusion_json_schema())
        return
    from trainer.planning.config_io import json_schema

    emit_json(json_schema())


@config_app.command("init")
def init_cmd(
    preset_name: str = typer.Option("lora", "--preset", help="lora, qlora, full, freeze or openai-style."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the config here (.toml, .yaml or .json); else print TOML."),
    examples: Optional[int] = typer.Option(None, "--examples", min=1, help="Number of training examples (sizes batch and steps)."),
    base_model: Optional[str] = typer.Option(None, "--model", help="Base model (default gemma-3-270m)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Training data file."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Start a config from a preset, with the reason behind each value."""
    from trainer.planning.presets import explain, preset

    with user_errors():
        config = preset(preset_name, n_examples=examples)
        if base_model:
            config.model.base_model = base_model
        if dataset:
            config.dataset.path = dataset
        path = _write_config(config, out) if out is not None else None
        explanations = explain(config, n_examples=examples)
        if json_out:
            emit_json({"config": config.to_dict(), "path": str(path) if path else None, "explanations": explanations})
            return
        if path is None:
            from trainer.planning.config_io import dumps_config

            typer.echo(dumps_config(config, "toml"))
        else:
            typer.echo(f"wrote {path}")
        for item in explanations:
            typer.echo(f"# {item['field']} = {item['value']}: {item['reason']} ({item['source']} § {item['heading']})", err=path is None)


# ---------------------------------------------------------------- diffusion (kohya sd-scripts)

def _load_diffusion(file: Path, with_import: bool = False):
    """A tunepilot diffusion config or a kohya file (sd-scripts TOML, dataset TOML, kohya_ss JSON/TOML)."""
    from trainer.planning.config_io import ConfigError
    from trainer.planning.diffusion_import import load_any_diffusion

    try:
        cfg, imported = load_any_diffusion(file)
    except ConfigError as exc:
        _fail_problems(exc.problems)
    return (cfg, imported) if with_import else cfg


@diffusion_app.command("init")
def diffusion_init(
    base: str = typer.Option("sdxl", "--base", help="sd15, sd2, sdxl or flux."),
    image_dir: str = typer.Option("", "--images", help="Folder of training images, or the parent of kohya's N_name folders."),
    model: str = typer.Option("", "--model", help="Base checkpoint (.safetensors) or diffusers folder."),
    gpu: Optional[str] = typer.Option(None, "--gpu", help='The GPU that will train, e.g. "RTX 4090"; else this machine.'),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the tunepilot diffusion config here (.toml, .yaml or .json); else print TOML."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Start a diffusion LoRA config valid for the target GPU: precision, batch size, checkpointing, optimizer."""
    from trainer.planning.diffusion_memory import estimate_diffusion, plan_diffusion

    with user_errors():
        cfg, choices = plan_diffusion(base, image_dir=image_dir, pretrained_model=model, gpu=gpu)
        path = _write_config(cfg, out) if out is not None else None
        if json_out:
            emit_json({"config": cfg.to_dict(), "path": str(path) if path else None, "choices": choices,
                       "memory_estimate": estimate_diffusion(cfg)})
            return
        if path is None:
            from trainer.planning.config_io import dumps_config

            typer.echo(dumps_config(cfg, "toml"))
        else:
            typer.echo(f"wrote {path}")
        for item in choices:
            typer.echo(f"# {item['field']} = {item['value']}: {item['reason']} ({item['source']} § {item['heading']})", err=path is None)


@diffusion_app.command("estimate")
def diffusion_estimate(
    file: Path = typer.Argument(..., help="tunepilot diffusion config or kohya file."),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="Check against this GPU instead of hardware.gpu."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Estimate GPU memory of a diffusion LoRA run, with the figures the estimate rests on."""
    from trainer.planning.diffusion_memory import estimate_diffusion
    from trainer.planning.hardware import lookup_gpu

    with user_errors():
        cfg = _load_diffusion(file)
        if gpu:
            if lookup_gpu(gpu) is None:
                fail(f"unknown GPU {gpu!r}; write it as on the card, e.g. \"RTX 4090\" or \"A100 80G\"")
            cfg.hardware.gpu = gpu
        est = estimate_diffusion(cfg)
        if json_out:
            emit_json(est)
            return
        _print_estimate({**est, "model": cfg.model.base, "device": cfg.hardware.gpu or "no GPU named",
                         "dtype": cfg.training.mixed_precision, "notes": [f"= {est['formula']}"]})
        for item in est["basis"]:
            value = f"{item['gb']} GB" if item.get("gb") is not None else str(item.get("value"))
            typer.echo(f"  basis: {item['figure']}: {value} ({item['source']})")


@diffusion_app.command("import")
def diffusion_import(
    file: Path = typer.Argument(..., help="kohya file: sd-scripts config_file.toml / dataset_config.toml, kohya_ss preset JSON or config.toml."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the tunepilot diffusion config here."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Map a kohya file onto a tunepilot diffusion config: mapped, changed (with why) and unsupported keys."""
    from tunepilot.cli.kohya_files import kohya_import_command

    kohya_import_command(file, out, json_out)


@diffusion_app.command("validate")
def diffusion_validate(
    file: Path = typer.Argument(..., help="tunepilot diffusion config (.toml/.yaml)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Check a diffusion LoRA config and show the step plan (images x repeats x epochs / batch)."""
    from trainer.planning.diffusion import step_plan, validate_diffusion

    with user_errors():
        cfg, imported = _load_diffusion(file, with_import=True)
        report = validate_diffusion(cfg).to_dict()
        report["ok"] = not report["errors"]
        report["steps"] = step_plan(cfg)
        from trainer.planning.diffusion_memory import estimate_diffusion

        report["memory_estimate"] = estimate_diffusion(cfg)
        if imported is not None:  # a kohya file: say which format and what did not carry over
            report["import"] = imported.to_dict()
        if json_out:
            emit_json(report)
        else:
            if imported is not None:
                from tunepilot.cli.kohya_files import print_kohya_import

                print_kohya_import(report["import"])
            _print_findings(report, str(file))
            if report["steps"].get("formula"):
                typer.echo(f"steps: {report['steps']['formula']}")
            est = report["memory_estimate"]
            where = (f" of {est['device_memory_gb']:g} GB ({'fits' if est['fits'] else 'does not fit'})"
                     if est["device_memory_gb"] else " (name hardware.gpu to check it against a card)")
            typer.echo(f"memory: ~{est['total_gb']:.1f} GB{where} = {est['formula']}")
        if report["errors"]:
            raise typer.Exit(USER_ERROR_EXIT)


@diffusion_app.command("export")
def diffusion_export(
    file: Path = typer.Argument(..., help="tunepilot diffusion config (.toml/.yaml)."),
    out: Path = typer.Option(..., "--out", help="Folder for config_file.toml, dataset_config.toml and sample_prompt.toml."),
    force: bool = typer.Option(False, "--force", help="Export even when the config has errors."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Write kohya sd-scripts' config_file.toml + dataset_config.toml + sample_prompt.toml."""
    from trainer.planning.diffusion import export_kohya, validate_diffusion

    with user_errors():
        cfg = _load_diffusion(file)
        report = validate_diffusion(cfg)
        if report.errors and not force:
            if json_out:
                emit_json({**report.to_dict(), "ok": False})
                raise typer.Exit(USER_ERROR_EXIT)
            _print_findings(report.to_dict(), str(file))
            fail("the config has errors; fix them (or pass --force) before exporting")
        try:
            result = export_kohya(cfg, out)
        except OSError as exc:
            fail(f"cannot write to {out}: {exc.strerror or exc}")
        result["warnings"] = [f.to_dict() for f in report.warnings]
        if json_out:
            emit_json(result)
            return
        for path in result["files"]:
            typer.echo(f"wrote {path}")
        if result["steps"].get("formula"):
            typer.echo(f"steps: {result['steps']['formula']}")
        typer.echo(f"run: {result['command']}")


def register(app: typer.Typer) -> None:
    """Add `tunepilot config ...` to the root app."""
    from tunepilot.cli import config_import  # `config import` / `config export` (LLaMA-Factory, axolotl)

    config_import.register(config_app)
    app.add_typer(config_app, name="config")
