"""A hostile client against the real server: path models, `..` segments, oversized and stalled bodies.

By default the server loads only the workspace's own model names, and its error messages name the
model the client sent, never a folder on the server.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from trainer.models import registry as models
from trainer.server import create_app
from trainer.server.background import BackgroundServer
from trainer.server.settings import ServerSettings

pytestmark = pytest.mark.integration

SHARED_HOME = True


@pytest.fixture(scope="module")
def server(module_home, tiny_model_dir):
    models.register_local("tiny", tiny_model_dir)
    settings = ServerSettings(max_body_bytes=32 * 1024, body_timeout_s=1.0)
    with BackgroundServer(create_app(settings)) as running:
        yield running


def chat(base_url: str, model: str, **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, **extra}
    return httpx.post(f"{base_url}/chat/completions", json=body, timeout=60)


def assert_no_server_path(response: httpx.Response, *paths, sent: str = "") -> None:
    """No server path in the reply except inside the name the client sent itself."""
    text = response.json()["error"]["message"].replace(repr(sent), "'<sent>'") if sent else response.text
    for path in paths:
        assert str(path) not in text, text
    assert "/tmp/" not in text and str(models.list_models()[0].path) not in text
    assert str(Path.home()) not in text or str(Path.home()) == "/", text


def test_registered_names_work_and_paths_are_refused_without_echoing_them(server, tiny_model_dir, module_home):
    assert chat(server.base_url, "tiny").status_code == 200
    hostile = [str(tiny_model_dir), f"{tiny_model_dir}/../{tiny_model_dir.name}", "../../../../etc",
               "~/.ssh", "models/gemma-3-270m", f"file://{tiny_model_dir}", "tiny/../tiny", "x" * 10_000]
    for name in hostile:
        response = chat(server.base_url, name)
        assert response.status_code == 404, (name, response.text)
        error = response.json()["error"]
        assert error["code"] == "model_not_found" and error["param"] == "model"
        assert "tiny" in error["message"]  # the available ids are listed
        assert len(error["message"]) < 2_000  # a huge name is not echoed in full
        assert_no_server_path(response, module_home, sent=name)


def test_path_models_are_refused_for_fine_tuning_too(server, tiny_model_dir, module_home):
    files = httpx.post(f"{server.base_url}/files", data={"purpose": "fine-tune"}, timeout=60,
                       files={"file": ("t.jsonl", json.dumps({"messages": [{"role": "user", "content": "a"},
                                                                           {"role": "assistant", "content": "b"}]}))})
    file_id = files.json()["id"]
    response = httpx.post(f"{server.base_url}/fine_tuning/jobs", timeout=60,
                          json={"model": str(tiny_model_dir), "training_file": file_id})
    assert response.status_code == 404
    assert_no_server_path(response, module_home, sent=str(tiny_model_dir))
    # the tunepilot extension may not point the trainer at server paths either
    for section, key in (("dataset", "path"), ("saving", "output_dir"), ("model", "base_model")):
        response = httpx.post(f"{server.base_url}/fine_tuning/jobs", timeout=60,
                              json={"model": "tiny", "training_file": file_id,
                                    "tunepilot": {section: {key: "/etc/passwd"}}})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == f"tunepilot.{section}.{key}"


def test_dot_dot_segments_in_urls_reach_nothing(server, module_home):
    for url in ("/files/..%2F..%2Fmodels%2Fregistry.json/content", "/files/file-..%2Fx/content",
                "/models/..%2F..%2Fetc%2Fpasswd", "/fine_tuning/jobs/..%2F..%2Fjobs.db"):
        response = httpx.get(server.base_url + url, timeout=30)
        assert response.status_code == 404, (url, response.text)
        assert_no_server_path(response, module_home)
    raw = _raw(server, b"GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b" 404 " in raw.split(b"\r\n", 1)[0] and b"root:" not in raw


def test_oversized_bodies_are_413_declared_or_not(server):
    big = {"model": "tiny", "messages": [{"role": "user", "content": "x" * 100_000}]}
    response = httpx.post(f"{server.base_url}/chat/completions", json=big, timeout=30)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    # chunked: no Content-Length to check up front; the bytes are counted as they arrive
    def chunks():
        yield b'{"model": "tiny", "messages": [{"role": "user", "content": "'
        for _ in range(50):
            yield b"x" * 1024
        yield b'"}]}'
    response = httpx.post(f"{server.base_url}/chat/completions", content=chunks(), timeout=30,
                          headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_stalled_body_gets_408_and_slow_clients_do_not_block_others(server):
    stalled = socket.create_connection((server.host, server.port), timeout=30)
    slow_headers = socket.create_connection((server.host, server.port), timeout=30)
    try:
        stalled.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 500\r\n\r\n{\"model\": \"tiny\"")
        slow_headers.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        # meanwhile other clients are served
        assert httpx.get(f"{server.root_url}/health", timeout=10).status_code == 200
        assert chat(server.base_url, "tiny").status_code == 200
        started = time.monotonic()
        reply = _read_all(stalled)
        assert b" 408 " in reply.split(b"\r\n", 1)[0], reply
        assert b"request_timeout" in reply
        assert time.monotonic() - started < 25  # freed by the server, not by our socket timeout
    finally:
        stalled.close()
        slow_headers.close()


def test_allow_local_paths_lets_the_operator_load_a_folder(tiny_model_dir):
    with BackgroundServer(create_app(ServerSettings(allow_local_paths=True))) as permissive:
        assert chat(permissive.base_url, str(tiny_model_dir)).status_code == 200
        missing = chat(permissive.base_url, str(tiny_model_dir / "nothing-here"))
        assert missing.status_code == 404
        assert_no_server_path(missing, sent=str(tiny_model_dir / "nothing-here"))


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            break
        if not piece:
            break
        data += piece
        if b"\r\n\r\n" in data and data.endswith(b"}"):
            break
    return data


def _raw(server, request: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(request)
        return _read_all(sock)
