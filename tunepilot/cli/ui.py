"""`tunepilot ui`: start the Streamlit app (the product's main screen)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

APP_PATH = Path(__file__).resolve().parent.parent / "ui" / "app.py"


def ui(
    port: int = typer.Option(8501, "--port", help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; 127.0.0.1 keeps it local."),
    headless: bool = typer.Option(True, "--headless/--open-browser", help="Do not open a browser window."),
) -> None:
    """Start the Streamlit app on the built-in defaults."""
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.port", str(port), "--server.address", host,
        "--server.headless", "true" if headless else "false",
        "--browser.gatherUsageStats", "false",
    ]
    raise typer.Exit(subprocess.call(cmd, env=os.environ.copy()))


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
