"""The FastAPI application: routes, auth, size limits, error shape, model pool and batcher in one place."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Request

from trainer.server import chat, completions, files, fine_tuning, models_api
from trainer.server.auth import require_api_key
from trainer.server.batching import MicroBatcher
from trainer.server.errors import install_error_handlers
from trainer.server.limits import BodySizeLimit
from trainer.server.model_pool import ModelPool, TransformersBackend
from trainer.server.settings import ServerSettings
from trainer.server.stats import GenerationStats

status_router = APIRouter()


@status_router.get("/v1/tunepilot/status")
def server_status(request: Request) -> dict:
    """tunepilot extension: loaded models, memory use and generation counters."""
    state = request.app.state
    return {"object": "tunepilot.status", "models": state.pool.status(), "generation": state.stats.to_dict(),
            "max_batch_size": state.settings.max_batch_size}


def create_app(settings: ServerSettings | None = None, pool: ModelPool | None = None) -> FastAPI:
    """Build the OpenAI-compatible app; settings default to the environment (TUNEPILOT_API_KEY, ...)."""
    settings = settings or ServerSettings.from_env()
    if pool is None:
        backend = TransformersBackend()
        pool = ModelPool(settings.memory_budget_bytes or backend.default_budget_bytes(), backend)

    app = FastAPI(
        title="tunepilot",
        summary="OpenAI-compatible local API: chat/completions on base and fine-tuned models, fine-tuning jobs.",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.stats = GenerationStats()
    app.state.batcher = MicroBatcher(settings.max_batch_size, app.state.stats)

    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes,
                       max_upload_bytes=settings.max_upload_bytes, body_timeout_s=settings.body_timeout_s)

    protected = [Depends(require_api_key)]
    for module_router in (models_api.router, chat.router, completions.router, files.router,
                          fine_tuning.router, status_router):
        app.include_router(module_router, dependencies=protected)

    @app.get("/health", include_in_schema=False)
    def health() -> dict:
        # Unauthenticated on purpose: readiness probes and `tunepilot serve` start-up checks.
        return {"status": "ok"}

    return app
