"""`tunepilot serve` as users run it: a subprocess on a loopback port, and its one-line start-up errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from trainer.server.background import free_port, wait_until_serving
from tunepilot.cli.main import app

TUNEPILOT = str(Path(sys.executable).with_name("tunepilot"))


@pytest.mark.integration
def test_serve_runs_the_api_with_an_api_key(tunepilot_home):
    port = free_port()
    env = {**os.environ, "TUNEPILOT_HOME": str(tunepilot_home)}
    proc = subprocess.Popen([TUNEPILOT, "serve", "--port", str(port), "--api-key", "k1", "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_serving(proc, f"http://127.0.0.1:{port}", timeout=180)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer k1"}, timeout=30)
        assert models.status_code == 200 and models.json()["object"] == "list"
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=30).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert f"http://127.0.0.1:{port}/v1" in err


def test_serve_on_a_busy_port_is_a_one_line_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 2
    assert "pick another --port" in result.output


def test_bad_environment_setting_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("TUNEPILOT_SERVE_MAX_BODY_MB", "lots")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "TUNEPILOT_SERVE_MAX_BODY_MB" in result.output
