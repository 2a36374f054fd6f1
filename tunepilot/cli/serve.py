"""`tunepilot serve` (the OpenAI-compatible local API) and `tunepilot models delete` (owner-only)."""

from __future__ import annotations

from typing import Optional

import typer

from tunepilot.cli.common import emit_json, fail, user_errors
from tunepilot.cli.models import models_app
from tunepilot.core.errors import UserError
from tunepilot.core.settings import settings as env_settings

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; the default only accepts local clients."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Require `Authorization: Bearer KEY` "
                                          "(default: $TUNEPILOT_API_KEY; unset leaves the API open)."),
    owner_key: Optional[str] = typer.Option(None, "--owner-key", help="Key that may delete fine-tuned models "
                                            "(default: $TUNEPILOT_OWNER_KEY)."),
    memory_gb: Optional[float] = typer.Option(None, "--memory-gb", min=0.1, help="Budget for loaded model weights; "
                                              "least recently used models are evicted (default: half the free memory)."),
    max_batch: Optional[int] = typer.Option(None, "--max-batch", min=1, help="Rows per micro-batch of concurrent "
                                            "requests (1 turns batching off; default 8)."),
    max_body_mb: Optional[float] = typer.Option(None, "--max-body-mb", min=0.001, help="Largest JSON body (default 1)."),
    max_upload_mb: Optional[float] = typer.Option(None, "--max-upload-mb", min=0.001,
                                                  help="Largest file upload (default 100)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level: critical, error, warning, info, debug."),
    allow_local_paths: bool = typer.Option(False, "--allow-local-paths",
                                           help="Let clients name local model folders (and hub ids) as `model`; "
                                                "by default only registered models, the base alias and ft: ids load."),
) -> None:
    """Serve the OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/completions, /v1/files, /v1/fine_tuning/jobs."""
    import uvicorn

    from trainer.server import create_app
    from trainer.server.settings import MB, ServerSettings

    with user_errors():
        settings = ServerSettings.from_env()  # a bad TUNEPILOT_SERVE_* value is a one-line UserError
        if api_key is not None:
            settings.api_key = api_key or None
        if owner_key is not None:
            settings.owner_key = owner_key or None
        if memory_gb is not None:
            settings.memory_budget_bytes = int(memory_gb * 1024 * MB)
        if max_batch is not None:
            settings.max_batch_size = max_batch
        if max_body_mb is not None:
            settings.max_body_bytes = int(max_body_mb * MB)
        if max_upload_mb is not None:
            settings.max_upload_bytes = int(max_upload_mb * MB)
        settings.allow_local_paths = allow_local_paths
        if log_level not in ("critical", "error", "warning", "info", "debug"):
            raise UserError(f"--log-level {log_level!r} is not one of critical, error, warning, info, debug.")
        if host not in _LOOPBACK and not settings.api_key:
            typer.echo(f"warning: serving on {host} without an API key lets anyone on the network use it; "
                       "set --api-key or TUNEPILOT_API_KEY.", err=True)
    _check_port_free(host, port)  # before loading anything, so a taken port fails at once
    with user_errors():
        app = create_app(settings)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"tunepilot API: http://{shown}:{port}/v1 (use it as the OpenAI base_url); docs at /docs", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def _check_port_free(host: str, port: int) -> None:
    """Fail with a one-line fix instead of uvicorn's log line when the address cannot be bound."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        fail(f"--host {host!r} is not a usable address ({exc.strerror or exc}); use 127.0.0.1 or 0.0.0.0.")
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or stop what uses it.")


def delete_model(
    model_id: str = typer.Argument(..., help="A fine-tuned model id (ft:...)."),
    owner_key: Optional[str] = typer.Option(None, "--owner-key",
                                            help="The owner key; needed when TUNEPILOT_API_KEY or "
                                                 "TUNEPILOT_OWNER_KEY is set."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Delete a fine-tuned model from the registry (its run folder stays on disk)."""
    from trainer.server.auth import OwnerKeyError, check_owner_key
    from trainer.server.model_admin import ModelNotDeletable, delete_finetuned_model

    with user_errors():
        try:
            env = env_settings()
            check_owner_key(owner_key, env.api_key, env.owner_key)
            result = delete_finetuned_model(model_id)
        except (OwnerKeyError, ModelNotDeletable) as exc:
            raise UserError(str(exc).replace("present it", "pass it with --owner-key")) from None
    if as_json:
        emit_json(result)
    else:
        typer.echo(f"deleted {result['id']} (its files stay in {result['path']})")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    models_app.command("delete")(delete_model)
