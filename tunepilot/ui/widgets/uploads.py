"""Keep files uploaded in the browser under `$TUNEPILOT_HOME/uploads`, so the library reads real paths.

Each upload goes into a folder named after a hash of its bytes: re-running the page (which Streamlit
does on every click) reuses the saved copy instead of writing it again, and two different files with
the same name never overwrite each other.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tunepilot.core import workspace

_UNSAFE = re.compile(r"[^\w.\-\u4e00-\u9fff]+")


def safe_name(name: str) -> str:
    """The file's own name, without folders or characters that make awkward paths."""
    base = Path(name.replace("\\", "/")).name
    return _UNSAFE.sub("_", base).strip("._") or "upload"


def save_upload(name: str, data: bytes, area: str = "files") -> Path:
    """Write an uploaded file to uploads/<area>/<hash>/<name> (once) and return its path."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    folder = workspace.subdir("uploads") / area / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / safe_name(name)
    if not path.exists() or path.stat().st_size != len(data):
        path.write_bytes(data)
    return path
