"""The vector store: Chroma, embedded (PersistentClient under the workspace) or a shared server.

One tunepilot collection maps to one Chroma collection per embedding model
(`<name>--<model hash>`), so vectors of different models never mix. Chroma is the source of truth
for what is indexed: every chunk carries its file's key, content hash and chunk count, so an
ingest can tell a completely committed file from one a crash interrupted without a separate
manifest. The collection's metadata holds a revision that changes with every ingest; readers
compare it with their BM25 snapshot to notice other processes' (or other machines') writes.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from knowledge import KnowledgeError
from tunepilot.core.settings import settings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,61}[A-Za-z0-9]$|^[A-Za-z0-9]$")
_PAGE = 5000


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or "--" in name:
        raise KnowledgeError(
            f"invalid collection name {name!r}: use 1-63 letters, digits, '.', '_' or '-' "
            "(starting and ending with a letter or digit, no '--')"
        )
    return name


def chroma_url(explicit: str | None = None) -> str | None:
    return (explicit or settings().chroma_url or "").strip() or None


@dataclass
class FileState:
    """What the store holds for one source file."""

    source: str
    n_chunks: int
    hashes: set[str] = field(default_factory=set)
    ids: list[str] = field(default_factory=list)

    def complete_for(self, file_hash: str) -> bool:
        """All chunks of exactly this version are there (a crash can leave a part, or two versions)."""
        return self.hashes == {file_hash} and len(self.ids) == self.n_chunks


class Store:
    """One Chroma backend (local folder or server URL), shared by everything in the process
    (`get_store`)."""

    def __init__(self, url: str | None = None):
        self.url = chroma_url(url)
        if self.url:
            self.key = "http-" + hashlib.sha1(self.url.encode()).hexdigest()[:10]
        else:
            from tunepilot.core.workspace import index_dir

            self.path = index_dir() / "chroma"
            self.key = "local"
        # physical collection -> the revision this client last saw or wrote (see `open`)
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()
        self.client = self._connect()

    def _connect(self):
        import chromadb
        from chromadb.config import Settings

        chroma_settings = Settings(anonymized_telemetry=False)
        if not self.url:
            self.path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(self.path), settings=chroma_settings)
        parsed = urlparse(self.url if "://" in self.url else f"http://{self.url}")
        if not parsed.hostname:
            raise KnowledgeError(f"--chroma-url {self.url!r} is not a URL like http://127.0.0.1:8000")
        try:
            client = chromadb.HttpClient(
                host=parsed.hostname,
                port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https",
                settings=chroma_settings,
            )
            client.heartbeat()
        except Exception as exc:
            raise KnowledgeError(
                f"cannot reach the Chroma server at {self.url} ({type(exc).__name__}); start one with "
                "`chroma run --path DIR --host 127.0.0.1 --port 8000` or drop --chroma-url"
            ) from None
        return client

    def _reopen(self) -> None:
        """A fresh embedded client. Chroma's embedded mode keeps each collection's vector index in
        memory, so vectors another process wrote stay invisible (and would be overwritten by our
        next write) until the client is rebuilt from disk."""
        try:
            from chromadb.api.shared_system_client import SharedSystemClient

            ident = self.client._identifier
            SharedSystemClient._identifier_to_system.pop(ident, None)
            SharedSystemClient._identifier_to_refcount.pop(ident, None)
        except (ImportError, AttributeError):  # pragma: no cover - other chromadb versions
            import chromadb

            chromadb.api.client.SharedSystemClient.clear_system_cache()
        self.client = self._connect()
        self._known.clear()

    @property
    def location(self) -> str:
        return self.url or str(self.path)

    def local_dir(self) -> Path:
        """Where this backend's local companions (BM25 snapshots, locks, sync stamps) live."""
        from tunepilot.core.workspace import index_dir

        path = index_dir() / ("bm25" if self.key == "local" else f"bm25-{self.key}")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def snapshot_path(self, physical: str) -> Path:
        return self.local_dir() / f"{physical}.bm25.pkl"

    @contextmanager
    def writer_lock(self, physical: str, wait: bool = True) -> Iterator[bool]:
        """One writer per collection on this machine (ingests, and readers healing a crashed
        ingest's leftovers). Yields False when `wait` is off and the lock is taken."""
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.local_dir() / f"{physical}.lock"))
        try:
            lock.acquire(timeout=0.5 if wait else 0)
        except Timeout:
            if not wait:
                yield False
                return
            print(f"waiting for another ingest into {physical} to finish ...", file=sys.stderr)
            lock.acquire()
        try:
            yield True
        finally:
            lock.release()

    # ------------------------------------------------------------------ collections

    @staticmethod
    def physical_name(collection: str, embedder_name: str) -> str:
        return f"{collection}--{hashlib.sha1(embedder_name.encode()).hexdigest()[:8]}"

    def open(self, collection: str, embedder_name: str, create: bool):
        """The Chroma collection, or None when it does not exist and `create` is false. An embedded
        client is rebuilt first when another process changed the collection since we last looked."""
        name = self.physical_name(check_collection_name(collection), embedder_name)
        with self._lock:
            col = self._get(collection, name, embedder_name, create)
            if col is None:
                return None
            seen = self._known.get(name)
            if not self.url and seen is not None and revision(col) != seen:
                self._reopen()
                col = self._get(collection, name, embedder_name, create)
            self._known[name] = revision(col)
            return col

    def _get(self, collection: str, name: str, embedder_name: str, create: bool):
        try:
            if create:
                return self.client.get_or_create_collection(
                    name,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"tp_collection": collection, "tp_embedder": embedder_name, "tp_revision": "new"},
                    embedding_function=None,
                )
            return self.client.get_collection(name, embedding_function=None)
        except Exception as exc:
            if not create and ("does not exist" in str(exc) or type(exc).__name__ == "NotFoundError"):
                return None
            raise

    def set_revision(self, col, value: str | None = None) -> str:
        """Name a new state of the collection (a uuid, or `dirty-...` while an ingest writes)."""
        value = value or uuid.uuid4().hex
        meta = {k: v for k, v in (col.metadata or {}).items() if not k.startswith("hnsw:")}
        meta["tp_revision"] = value
        with self._lock:
            col.modify(metadata=meta)
            # Only a write through the current client is "ours"; one through a client replaced
            # meanwhile must make the next `open` rebuild again.
            if getattr(col, "_client", None) is getattr(self.client, "_server", None):
                self._known[col.name] = value
        return value


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def get_store(url: str | None = None) -> Store:
    """The process-wide Store for a server URL, or for the current workspace's local index."""
    url = chroma_url(url)
    # Keyed on the workspace setting, not index_dir() (which probes the disk): tests and users
    # switch TUNEPILOT_HOME within one process, and this runs on every search.
    key = url or f"{settings().home}\0{os.getcwd()}"
    with _stores_lock:
        if key not in _stores:
            _stores[key] = Store(url)
        return _stores[key]


def revision(col) -> str:
    return str((col.metadata or {}).get("tp_revision", ""))


def file_states(col, root_id: str) -> dict[str, FileState]:
    """doc_key -> FileState for every file of one ingested root."""
    states: dict[str, FileState] = {}
    offset = 0
    while True:
        page = col.get(where={"root": root_id}, include=["metadatas"], limit=_PAGE, offset=offset)
        for cid, meta in zip(page["ids"], page["metadatas"]):
            st = states.setdefault(meta["doc_key"], FileState(meta["source"], int(meta["n_chunks"])))
            st.hashes.add(meta["file_hash"])
            st.ids.append(cid)
        if len(page["ids"]) < _PAGE:
            return states
        offset += _PAGE


def all_chunks(col):
    """(ids, documents, metadatas) of the whole collection, paged."""
    ids: list[str] = []
    docs: list[str] = []
    metas: list[dict] = []
    offset = 0
    while True:
        page = col.get(include=["documents", "metadatas"], limit=_PAGE, offset=offset)
        ids += page["ids"]
        docs += page["documents"]
        metas += page["metadatas"]
        if len(page["ids"]) < _PAGE:
            return ids, docs, metas
        offset += _PAGE


def replace_file(col, ids, embeddings, documents, metadatas, old_ids) -> None:
    """Add a file's new chunks, then drop its old ones: readers always see one whole version."""
    step = max(1, min(_max_batch(col), 1000))
    for i in range(0, len(ids), step):
        col.upsert(
            ids=ids[i : i + step],
            embeddings=embeddings[i : i + step],
            documents=documents[i : i + step],
            metadatas=metadatas[i : i + step],
        )
    keep = set(ids)
    delete_ids(col, [cid for cid in old_ids if cid not in keep])


def delete_ids(col, ids: list[str]) -> None:
    for i in range(0, len(ids), 1000):
        col.delete(ids=ids[i : i + 1000])


def _max_batch(col) -> int:
    try:
        return int(col._client.get_max_batch_size())
    except Exception:
        return 1000
