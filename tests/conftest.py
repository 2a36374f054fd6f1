"""Shared fixtures (an isolated $TUNEPILOT_HOME for every test, a tiny in-process model) and the test lanes.

Lanes (markers registered in pyproject.toml): a test is `unit` unless it is marked `integration`
or `browser`; `slow` tests (the real default model) are integration too. So `-m unit` is the fast
lane and needs no marker on the many small tests; helpers shared by modules live in tests/support.py.
"""

from __future__ import annotations

import os

import pytest

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _clear_own_settings() -> None:
    """The developer's or CI's own tunepilot/OpenAI/PromptLayer settings must not reach the tests: an
    endpoint or key there would change which engine answers, or send eval rows off the machine."""
    from tunepilot.core.settings import variable_names

    for name in variable_names():
        if name != "HF_HUB_OFFLINE":
            os.environ.pop(name, None)


_clear_own_settings()

NOT_UNIT = ("integration", "browser")


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook applies `-m`
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
        if not any(item.get_closest_marker(name) for name in NOT_UNIT):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def tunepilot_home(tmp_path, monkeypatch, request):
    """Every test gets its own empty workspace, unless its module sets `SHARED_HOME = True`: then all
    its tests share `module_home` with the server thread or job workers the module starts."""
    if getattr(request.module, "SHARED_HOME", False):
        return request.getfixturevalue("module_home")
    home = tmp_path / "tp-home"
    monkeypatch.setenv("TUNEPILOT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny Gemma-3-shaped model folder (a few hundred KB), built once per session."""
    from tests.tiny_model import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def module_home(tmp_path_factory, request):
    """One workspace for a whole test module, for servers and workers that outlive a single test.

    A module asks for it with `SHARED_HOME = True` (see `tunepilot_home`), so every test in the
    module sees the same $TUNEPILOT_HOME as its server thread.
    """
    home = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1] + "-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("TUNEPILOT_HOME", str(home))
    yield home
    patch.undo()


@pytest.fixture(scope="session")
def default_model_home(tmp_path_factory):
    """A workspace holding the real default model, provisioned once per session (about 2 min on 2 cores).

    `slow` tests that need gemma-3-270m point $TUNEPILOT_HOME here (see `with_default_model`)
    instead of converting the GGUF again in their own empty workspace.
    """
    home = tmp_path_factory.mktemp("default-model-home")
    patch = pytest.MonkeyPatch()
    patch.setenv("TUNEPILOT_HOME", str(home))
    from trainer.models import registry

    registry.ensure_default_model(progress=False)
    patch.undo()
    return home


@pytest.fixture
def with_default_model(default_model_home, monkeypatch):
    monkeypatch.setenv("TUNEPILOT_HOME", str(default_model_home))
    return default_model_home
