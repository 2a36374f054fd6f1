"""Which model names a client may ask the server to load.

By default only names this workspace knows: the built-in base alias, models registered with a
short name, and its `ft:` ids (fine-tuned models and their checkpoints), i.e. what GET /v1/models
lists. Anything else (a folder such as `/srv/models/x` or `../../x`, a hub id that would be
downloaded) is refused before the registry is asked, so a client cannot make the server read
arbitrary folders or learn which paths exist. `tunepilot serve --allow-local-paths` lifts this
for operators who want it. Refusals name the model as the client sent it, never a server path.
"""

from __future__ import annotations

from trainer.models import registry as models
from trainer.server.errors import APIError

_SHOWN_NAME_CHARS = 200  # a hostile client's megabyte-long name is not echoed in full


def shown(model_id: str) -> str:
    text = model_id if len(model_id) <= _SHOWN_NAME_CHARS else model_id[:_SHOWN_NAME_CHARS] + "..."
    return repr(text)


def servable_ids() -> list[str]:
    return [e.id for e in models.list_models()]


def check_model_name(model_id: str, allow_local_paths: bool) -> None:
    """Raise a 404 APIError unless the server may load `model_id`."""
    if allow_local_paths:
        return
    ids = servable_ids()
    if model_id in ids:
        return
    raise APIError(404, f"The model {shown(model_id)} does not exist on this server. Available models: "
                        f"{', '.join(ids) or 'none'}. This server loads only these names (local folders are "
                        "off; the operator can register one with `tunepilot models register` or start "
                        "`tunepilot serve --allow-local-paths`).", param="model", code="model_not_found")
