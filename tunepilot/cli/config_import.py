"""`tunepilot config import FILE` and `tunepilot config export FILE --to TOOL`: configs of LLaMA-Factory
and axolotl into tunepilot's and back (trainer.planning.peer_configs), with a table of what each key became.

Thin: read the options, call the library, render. `--json` prints exactly one JSON document.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tunepilot.cli.common import emit_json, fail, user_errors

_STATUS_STYLE = {"mapped": "green", "changed": "yellow", "not_supported": "red", "empty": "dim", "defaults": "cyan"}
_STATUS_TITLE = {"mapped": "mapped", "changed": "changed", "not_supported": "not supported", "empty": "empty (no value)",
                 "defaults": "peer default written"}


def _print_report(report: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=title, show_lines=False)
    for col in ("status", "key", "value", "becomes", "why / nearest"):
        table.add_column(col, overflow="fold")
    for status in ("mapped", "changed", "defaults", "not_supported", "empty"):
        style = _STATUS_STYLE[status]
        for e in report[status]:
            becomes = f"{e['target']} = {e['new_value']!r}" if e.get("target") else ""
            table.add_row(f"[{style}]{_STATUS_TITLE[status]}[/{style}]", e["key"], _short(e.get("value")), becomes,
                          e.get("why") or e.get("nearest") or "")
    console.print(table)
    counts = report["counts"]
    console.print(f"{counts['mapped']} mapped, {counts['changed']} changed, {counts['not_supported']} not supported, "
                  f"{counts['empty']} empty, {counts['default']} peer defaults written")
    for note in report["notes"]:
        console.print(f"[dim]note: {note}[/dim]")


def _short(value, limit: int = 60) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def import_cmd(
    file: Path = typer.Argument(..., help="A LLaMA-Factory or axolotl training YAML (or JSON)."),
    source: str = typer.Option("auto", "--from", help="llamafactory, axolotl, kohya or auto (detect from the keys)."),
    out: Path | None = typer.Option(None, "--out", help="Write the tunepilot config here (.toml, .yaml or .json)."),
    gpu: str | None = typer.Option(None, "--gpu", help='The GPU that will train, e.g. "A100 80G" (hardware.gpu: validation '
                                   "and the memory estimate judge that GPU, not this machine)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Convert another tool's config: every key is mapped, changed (with why), or named as not supported."""
    from trainer.planning.config_io import dump_config, dumps_config

    # kohya files (sd-scripts / kohya_ss) become diffusion configs, a different schema: that importer renders itself.
    from trainer.planning.diffusion_import import is_kohya_file
    from trainer.planning.findings import check_config
    from trainer.planning.peer_configs import import_file

    if source == "kohya" or (source == "auto" and is_kohya_file(file)):
        from tunepilot.cli.kohya_files import kohya_import_command

        kohya_import_command(file, out, json_out)
        return
    with user_errors():
        config, report = import_file(file, source)
        if gpu:
            config.hardware.gpu = gpu
            report.data = config.to_dict()
        path = None
        if out is not None:
            try:
                path = str(dump_config(config, out))
            except OSError as exc:
                fail(f"cannot write {out}: {exc.strerror or exc}")
        validation = check_config(config).to_dict()
        result = {"format": _format_name(report.source_format), "source": str(file), "path": path,
                  "config": report.data, **report.to_dict(), "validation": {**validation, "ok": not validation["errors"]}}
        if json_out:
            emit_json(result)
            return
        _print_report(result, f"{file} ({report.source_format}) -> tunepilot")
        if path:
            typer.echo(f"wrote {path}")
        else:
            typer.echo(dumps_config(config, "toml"))
        errors = validation["errors"]
        if errors:
            typer.echo(f"validation: {len(errors)} error(s); run `tunepilot config validate` on the written file for details", err=True)


def _format_name(title: str) -> str:
    from trainer.planning.peer_configs import FORMATS

    return next((name for name, module in FORMATS.items() if module.TITLE == title), title)


def export_cmd(
    file: Path = typer.Argument(..., help="A tunepilot training config (.toml, .yaml or .json)."),
    to: str = typer.Option(..., "--to", help="llamafactory or axolotl."),
    out: Path | None = typer.Option(None, "--out", help="Write the tool's YAML here; else print it."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Write a tunepilot config as a LLaMA-Factory or axolotl YAML, naming what does not carry over."""
    from trainer.planning.config_io import (
        ConfigError,
        dumps_data,
        load_config,
        write_data,
    )
    from trainer.planning.peer_configs import export_config

    with user_errors():
        try:
            config = load_config(file)
        except ConfigError as exc:
            fail(f"{file}: " + "; ".join(p["message"] for p in exc.problems))
        report = export_config(config, to, base=file.resolve().parent)
        written: list[str] = []
        if out is not None:
            written = _write_export(report, out, write_data)
        result = {"to": to, "source": str(file), "path": str(out) if out else None, "files": written,
                  "config": report.data, **{k: v for k, v in report.to_dict().items() if k != "files"},
                  "extra_files": report.files}  # e.g. the dataset_info.json LLaMA-Factory needs beside the YAML
        if json_out:
            emit_json(result)
            return
        _print_report(result, f"{file} -> {report.target_format}")
        if out is None:
            typer.echo(dumps_data(report.data, "yaml"))
            for name, data in report.files.items():
                typer.echo(f"# {name} (written beside the YAML with --out):\n{dumps_data(data, 'json')}")
        for path in written:
            typer.echo(f"wrote {path}")


def _write_export(report, out: Path, write_data) -> list[str]:
    """The tool's YAML, plus any file it needs beside it (a dataset_info.json), never overwriting one."""
    import json

    from tunepilot.core import atomic

    if out.suffix.lower() not in (".yaml", ".yml", ".json"):
        fail(f"{out}: LLaMA-Factory and axolotl read .yaml/.yml (or .json) files; choose such a name")
    written = []
    for name, data in report.files.items():
        target = out.parent / name
        if target.exists():
            fail(f"{target} already exists; export into another folder (the file would replace your registry)")
        atomic.write_text(target, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        written.append(str(target))
        if name == "dataset_info.json" and "dataset_dir" in report.data:
            report.data["dataset_dir"] = str(out.parent.resolve())
    try:
        written.insert(0, str(write_data(report.data, out)))
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    return written


def register(config_app: typer.Typer) -> None:
    """Add `import` and `export` to the `tunepilot config` group."""
    config_app.command("import")(import_cmd)
    config_app.command("export")(export_cmd)
