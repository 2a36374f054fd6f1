"""CLI commands for one part of the product (see INTERFACES.md for which part)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root `tunepilot` app."""
