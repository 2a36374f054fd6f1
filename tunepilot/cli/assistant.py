"""`tunepilot ask` (one grounded answer) and `tunepilot chat` (a terminal conversation).

Both are thin fronts over `assistant.answer` and `assistant.config_from_text`: the chat keeps the
history for follow-up questions and a draft config (`assistant.draft`): a message that asks for a
training run starts the draft, later ones ("5 epochs", "use QLoRA", "我只有 12G") edit it and show
what changed and what is missing, questions in between are answered without losing it, and
"start over" (or /reset) clears it. It offers to save the config and launch it as a job.
"""

from __future__ import annotations

from typing import Optional

import typer

from tunepilot.cli.common import emit_json, user_errors
from tunepilot.core.errors import UserError
from tunepilot.core.progress import stderr_console

ENGINE_HELP = "Answer engine: extractive (no LLM, default), openai (an OpenAI-compatible endpoint), local (a local chat model)."


def _engine_options(model: Optional[str]) -> dict:
    return {"model": model} if model else {}


def _run_answer(question: str, engine: str, model: Optional[str], collection: str, history=None, live_console=None):
    """The final Answer; with `live_console`, LLM pieces are shown as they stream and then cleared,
    because the final text (after the citation guard) is what gets printed."""
    from assistant.answer import Answer, stream_answer

    stream = stream_answer(question, engine=engine, history=history, collection=collection, **_engine_options(model))
    if live_console is None or engine == "extractive":
        return [item for item in stream if isinstance(item, Answer)][-1]
    from rich.live import Live
    from rich.text import Text

    shown, final = "", None
    with Live(Text(""), console=live_console, transient=True, refresh_per_second=8) as live:
        for item in stream:
            if isinstance(item, Answer):
                final = item
            else:
                shown += item
                live.update(Text(shown))
    return final


def render_answer(console, result) -> None:
    """Markdown answer, then its numbered sources."""
    from rich.markdown import Markdown

    console.print(Markdown(result.answer))
    if result.citations:
        console.print()
        console.print("[bold]Sources[/bold]")
        for c in result.citations:
            where = f"{c.source} › {c.heading}" if c.heading else c.source
            console.print(f"  [{c.n}] {where}", markup=False)
    console.print(f"[dim]engine: {result.engine} · grounded: {'yes' if result.grounded else 'no'}[/dim]")


def ask(
    question: str = typer.Argument(..., help="The question, in English or Chinese."),
    engine: str = typer.Option("extractive", "--engine", "-e", help=ENGINE_HELP),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model for the openai/local engine."),
    collection: str = typer.Option("default", "--collection", "-c", help="Knowledge collection to search."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Answer a fine-tuning question from the documentation, with numbered citations."""
    from rich.console import Console

    with user_errors():
        if as_json:
            result = _run_answer(question, engine, model, collection)
        elif engine == "extractive":
            with stderr_console().status("Searching the docs..."):
                result = _run_answer(question, engine, model, collection)
        else:
            result = _run_answer(question, engine, model, collection, live_console=stderr_console())
    if as_json:
        emit_json(result.to_dict())
        return
    render_answer(Console(), result)


# ------------------------------------------------------------------------------- chat

CHAT_HELP = """Ask fine-tuning questions, or describe a training run ("fine-tune gemma-3-270m on data.jsonl, 3 epochs"),
then edit it ("make it 5 epochs", "use QLoRA", "start over").
Commands: /reset (forget the conversation), /save FILE (save the last config), /launch (start it as a job), /quit."""


def render_config(console, result: dict) -> None:
    """The config summary, its validation findings and the memory estimate."""
    from rich.table import Table

    cfg = result["config"]
    table = Table(title="Training config", show_header=False, title_justify="left")
    rows = [
        ("base model", cfg["model"]["base_model"]), ("method", cfg["method"]["type"]),
        ("dataset", cfg["dataset"].get("path") or "(not set)"), ("epochs", cfg["training"]["epochs"]),
        ("learning rate", cfg["optimizer"]["learning_rate"]), ("optimizer", cfg["optimizer"]["type"]),
        ("batch x accumulation", f"{cfg['training']['batch_size']} x {cfg['training']['gradient_accumulation_steps']}"),
        ("max length", cfg["dataset"]["max_seq_length"]),
    ]
    if cfg["method"]["type"] in ("lora", "qlora"):
        rows.append(("rank / alpha", f"{cfg['method']['lora_r']} / {cfg['method']['lora_alpha']}"))
    hw = cfg.get("hardware", {})
    if hw.get("gpu") or hw.get("device_memory_gb"):
        rows.append(("hardware", hw.get("gpu") or f"{hw['device_memory_gb']:g} GB"))
    for key, value in rows:
        table.add_row(key, str(value))
    console.print(table)
    mem = result["memory_estimate"]
    if mem.get("total_gb") is not None:
        fits = {True: "[green]fits[/green]", False: "[red]does not fit[/red]", None: "device memory unknown"}[mem.get("fits")]
        device = f" of {mem['device_memory_gb']:g} GB" if mem.get("device_memory_gb") else ""
        console.print(f"memory estimate: {mem['total_gb']:g} GB{device} — {fits}")
    elif mem.get("error"):
        console.print(f"memory estimate: unavailable ({mem['error']})", markup=False)
    for finding in result["validation"]["errors"]:
        console.print(f"[red]error[/red] {finding['field']}: {finding['message']}", highlight=False)
    for finding in result["validation"]["warnings"]:
        console.print(f"[yellow]warning[/yellow] {finding['field']}: {finding['message']}", highlight=False)


def _save_config(config: dict, path: str) -> str:
    from pathlib import Path

    from trainer.planning.config_io import dump_config, parse_config

    target = Path(path).expanduser()
    if target.suffix.lower() not in (".toml", ".yaml", ".yml"):
        raise UserError(f"cannot save to {path!r}: use a .toml, .yaml or .yml file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    dump_config(parse_config(config), target)
    return str(target)


def _launch(config: dict) -> dict:
    from trainer import jobs
    from trainer.planning.config_io import parse_config

    try:
        return jobs.create_job(parse_config(config))
    except jobs.JobError as exc:
        raise UserError(str(exc)) from exc


class ChatSession:
    """The REPL's state and one step per line; kept apart from I/O so it is easy to drive."""

    def __init__(self, console, engine: str, model: Optional[str], collection: str, ask_line=input):
        self.console, self.engine, self.model, self.collection = console, engine, model, collection
        self.ask_line = ask_line
        self.history: list[dict] = []
        self.last_config: dict | None = None
        self.last_errors: list[dict] = []
        from assistant.draft import Draft

        self.draft = Draft()

    def handle(self, line: str) -> bool:
        """Process one input line; False means the session should end."""
        from assistant.config_from_text import RESET_REPLY, converse
        from tunepilot.core.language import detect_lang

        text = line.strip()
        if not text:
            return True
        if text in ("/quit", "/exit", "/q"):
            return False
        if text == "/reset":
            self.history.clear()
            self.last_config = None
            self.draft.reset()
            self.console.print("[dim]conversation cleared[/dim]")
            return True
        if text == "/help":
            self.console.print(CHAT_HELP, markup=False)
            return True
        if text.startswith("/save"):
            self._save(text[len("/save"):].strip())
            return True
        if text == "/launch":
            self._launch()
            return True
        if text.startswith("/"):
            self.console.print(f"unknown command {text.split()[0]}; {CHAT_HELP.splitlines()[-1]}", markup=False)
            return True
        first = not self.draft.active
        kind, result = "question", None
        if self.draft.classify(text) != "question":  # the LLM engine is only set up for config turns
            kind, result = converse(self.draft, text, engine=self._config_engine() if self.engine != "extractive" else None)
        else:
            self.draft.skip()
        if kind == "reset":
            self.last_config = None
            self.console.print(RESET_REPLY[detect_lang(text)], markup=False)
            return True
        if kind == "edit":
            self.last_config = result["config"]
            self.last_errors = result["validation"]["errors"]
            render_config(self.console, result)
            self.console.print(result["reply"], markup=False, highlight=False)
            self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": result["reply"]}]
            if first:
                self._offer_save()
            else:
                self.console.print("[dim]/save FILE saves it, /launch starts it[/dim]")
            return True
        result = _run_answer(text, self.engine, self.model, self.collection, history=list(self.history),
                             live_console=self.console)
        render_answer(self.console, result)
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": result.answer}]
        return True

    def _config_engine(self):
        """The chat's LLM engine (with its --model) for structured extraction; None = the parser."""
        from assistant.engines import EngineUnavailable, get_engine

        if self.engine == "extractive":
            return None
        try:
            return get_engine(self.engine, **_engine_options(self.model))
        except EngineUnavailable as exc:
            self.console.print(f"[dim]{exc}; reading the request with the deterministic parser[/dim]", highlight=False)
            return None

    def _offer_save(self) -> None:
        try:
            path = self.ask_line("Save this config? file name (.toml/.yaml), or Enter to skip: ").strip()
        except EOFError:
            return
        if path:
            self._save(path)
            if not self.last_errors:
                self.console.print("Type /launch to start it as a training job.")

    def _save(self, path: str) -> None:
        if self.last_config is None:
            self.console.print("no config yet: describe a training run first")
            return
        if not path:
            self.console.print("usage: /save FILE.toml")
            return
        try:
            saved = _save_config(self.last_config, path)
        except UserError as exc:
            self.console.print(f"error: {exc}", markup=False)
            return
        self.console.print(f"saved {saved}  (start it with: tunepilot jobs create {saved})", markup=False)

    def _launch(self) -> None:
        if self.last_config is None:
            self.console.print("no config yet: describe a training run first")
            return
        if self.last_errors:
            self.console.print("the config has validation errors; fix the request first", markup=False)
            return
        try:
            job = _launch(self.last_config)
        except UserError as exc:
            self.console.print(f"error: {exc}", markup=False)
            return
        self.console.print(f"job {job['id']} {job['status']}  (follow it with: tunepilot jobs events {job['id']})", markup=False)


def chat(
    engine: str = typer.Option("extractive", "--engine", "-e", help=ENGINE_HELP),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model for the openai/local engine."),
    collection: str = typer.Option("default", "--collection", "-c", help="Knowledge collection to search."),
) -> None:
    """A terminal chat: grounded answers with follow-ups, and training configs from a description."""
    from rich.console import Console

    console = Console()
    console.print(CHAT_HELP, markup=False)
    session = ChatSession(console, engine, model, collection)
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            break
        try:
            with user_errors():
                if not session.handle(line):
                    break
        except typer.Exit as exc:
            # A user mistake (empty question, bad model) ends that turn, not the chat.
            if exc.exit_code not in (0, 2):
                raise


def register(app: typer.Typer) -> None:
    """Add `ask` and `chat` to the root `tunepilot` app."""
    app.command("ask")(ask)
    app.command("chat")(chat)
