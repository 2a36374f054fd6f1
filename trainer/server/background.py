"""Run the API in a background thread on a free loopback port (tests, benchmarks, embedding in an app).

    with BackgroundServer(create_app()) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused")

It is the same uvicorn server `tunepilot serve` runs, only started from Python.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_until_serving(proc: subprocess.Popen, root_url: str, timeout: float) -> None:
    """Block until a `tunepilot serve` subprocess answers /health; raise if it exits or times out."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{root_url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            stderr = proc.stderr.read()[-2000:] if proc.stderr else ""
            raise RuntimeError(f"tunepilot serve exited with code {proc.returncode}: {stderr}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"tunepilot serve did not answer {root_url}/health within {timeout:.0f}s")
        time.sleep(0.5)


class BackgroundServer:
    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None, log_level: str = "warning",
                 start_timeout: float = 60.0):
        import uvicorn

        self.app = app
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout = start_timeout
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level=log_level,
                                                     lifespan="off"))
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What OpenAI clients take as `base_url`."""
        return f"{self.root_url}/v1"

    def start(self) -> "BackgroundServer":
        # uvicorn installs signal handlers only in the main thread, so a thread is fine here.
        self._thread = threading.Thread(target=self._server.run, name="tunepilot-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the API server did not start on {self.root_url} (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API server did not start within {self.start_timeout:.0f}s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
