"""Rendering of a kohya import (`config diffusion import`, `config diffusion validate` on a kohya file, and
`config import --from kohya`): one table of kohya key -> tunepilot field, with changed and unsupported keys.

Thin: the mapping is trainer.planning.diffusion_import's; this module only prints it. It sits apart from
`config.py` so that `config_import.py` (LLaMA-Factory / axolotl) can hand kohya files over without an
import cycle.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tunepilot.cli.common import emit_json, fail, user_errors


def print_kohya_import(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(f"{result['path']}: {result['format_name']}")
    table = Table("kohya key", "tunepilot field", "value", "note")
    for item in result["mapped"]:
        table.add_row(item["key"], item["field"], str(item["value"]), "")
    for item in result["changed"]:
        table.add_row(item["key"], item["field"], str(item["value"]), f"[yellow]changed[/yellow]: {item['why']}")
    for item in result["unsupported"]:
        table.add_row(item["key"], "-", str(item["value"]), f"[red]not supported[/red]; nearest: {item['nearest']}")
    console.print(table)
    if result["unset_or_default"]:
        console.print(f"[dim]empty, off or at kohya's default (nothing to carry over): {', '.join(result['unset_or_default'])}[/dim]")


def print_validation(report: dict) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    errors, warnings = report["errors"], report["warnings"]
    console.print(f"validation: {'[red]invalid[/red]' if errors else '[green]valid[/green]'} "
                  f"({len(errors)} errors, {len(warnings)} warnings)")
    for f in errors + warnings:
        tag = "[red]error  [/red]" if f["severity"] == "error" else "[yellow]warning[/yellow]"
        console.print(f"  {tag} [bold]{f['field'] or '-'}[/bold] [{f['rule_id']}] {f['message']} [dim]({f['source']} § {f['heading']})[/dim]")


def kohya_import_command(file: Path, out: Path | None, json_out: bool) -> None:
    """Import a kohya file, optionally write the tunepilot diffusion config, and print the mapping."""
    from trainer.planning.config_io import ConfigError, dump_config
    from trainer.planning.diffusion import step_plan, validate_diffusion
    from trainer.planning.diffusion_import import import_kohya

    with user_errors():
        result = import_kohya(file)
        path = None
        if out is not None:
            try:
                path = dump_config(result.config, out)
            except ConfigError as exc:
                fail("; ".join(p["message"] for p in exc.problems))
            except OSError as exc:
                fail(f"cannot write {out}: {exc.strerror or exc}")
        data = {**result.to_dict(), "written": str(path) if path else None,
                "validation": validate_diffusion(result.config).to_dict(), "steps": step_plan(result.config)}
        if json_out:
            emit_json(data)
            return
        print_kohya_import(data)
        print_validation(data["validation"])
        if data["steps"].get("formula"):
            typer.echo(f"steps: {data['steps']['formula']}")
        if path:
            typer.echo(f"wrote {path}")
