"""tunepilot's OpenAI-compatible local API (`tunepilot serve`).

`create_app()` returns the FastAPI app; run it with uvicorn (`tunepilot serve` does). The official
`openai` client, LangChain's ChatOpenAI or curl work against it with `base_url=http://127.0.0.1:8000/v1`.
"""

from __future__ import annotations


def create_app(*args, **kwargs):
    # Imported lazily so `import trainer.server` stays cheap for code that only wants the name.
    from trainer.server.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
