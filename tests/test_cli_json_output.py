"""`--json` commands print exactly one JSON document on stdout, even when a native library writes to fd 1.

The Rust tokenizers print warnings with `println!`, straight to file descriptor 1, behind Python's
sys.stdout; the CLI's root app sets the real stdout aside for `emit_json` and points fd 1 at stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

TUNEPILOT = str(Path(sys.executable).parent / "tunepilot")

# What a native library does: write to fd 1 directly, and a Python print for good measure.
NOISY_COMMAND = """
import os, sys
from tunepilot.cli import common
from tunepilot.cli.main import app

@app.command("noisy-test")
def noisy(as_json: bool = common.typer.Option(False, "--json")):
    os.write(1, b"The OrderedVocab you are attempting to save contains holes for indices [3, 4]\\n")
    print("a stray print")
    common.emit_json({"ok": True}) if as_json else print("plain")

sys.argv = ["tunepilot"] + sys.argv[1:]
app()
"""


def run(args, env=None):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
                          check=False)


def test_native_writes_to_fd1_go_to_stderr_under_json():
    done = run([sys.executable, "-c", NOISY_COMMAND, "noisy-test", "--json"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ok": True}
    assert "OrderedVocab" in done.stderr and "a stray print" in done.stderr
    # without --json nothing is moved
    plain = run([sys.executable, "-c", NOISY_COMMAND, "noisy-test"])
    assert "OrderedVocab" in plain.stdout and "plain" in plain.stdout


def test_jobs_commands_print_one_document(tunepilot_home):
    env = {"TUNEPILOT_HOME": str(tunepilot_home)}
    listed = run([TUNEPILOT, "jobs", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["object"] == "list"
    missing = run([TUNEPILOT, "jobs", "checkpoints", "ftjob-nope", "--json"], env)
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith("error: ") and len(missing.stderr.strip().splitlines()) == 1
