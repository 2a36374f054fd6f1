"""Add documents to a collection: idempotent, incremental, safe to interrupt.

Each file is keyed by (ingested root, path relative to it) and fingerprinted by its bytes (plus the
chunker version). A file whose complete chunk set for that fingerprint is already in Chroma is
unchanged and embeds nothing; a changed file gets its new chunks added before its old ones are
removed; a file gone from an ingested folder is removed. Chroma itself records what is committed
(every chunk knows its file's fingerprint and chunk count), so a crash or Ctrl-C at any point leaves
whole files or detectable partial ones, and the next run finishes the job. The collection revision
is marked dirty before the first write and renewed, with a fresh BM25 snapshot, at the end; searches
that see a dirty or newer revision rebuild BM25 from Chroma themselves.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from knowledge import KnowledgeError, bm25_index, docs_path, library_docs
from knowledge import store as stores
from knowledge.chunking import CHUNKER_VERSION, chunk, passage
from knowledge.embeddings import Embedder, get_embedder
from knowledge.loaders import SUPPORTED, LoadError, load, read_bytes, walk
from tunepilot.core.progress import progress_bar

SHIPPED_ROOT = "tunepilot:docs"  # root id of the shipped corpus, the same on every machine
EMBED_BATCH = 64


class IngestError(KnowledgeError):
    """`strict=True` and some files were skipped; `.summary` has the whole result."""

    def __init__(self, summary: "IngestSummary"):
        self.summary = summary
        first = summary.skipped[0]
        super().__init__(
            f"{len(summary.skipped)} file(s) skipped, first: {first['path']}: {first['reason']}"
        )


@dataclass
class IngestSummary:
    collection: str
    store: str
    roots: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}
    chunks: int = 0  # chunks embedded by this run
    chunks_total: int = 0  # chunks in the collection afterwards
    seconds: float = 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["counts"] = {k: len(data[k]) for k in ("added", "updated", "unchanged", "removed", "skipped")}
        data["seconds"] = round(self.seconds, 3)
        data["chunks_per_second"] = round(self.chunks / self.seconds, 1) if self.seconds > 0 and self.chunks else 0.0
        return data


@dataclass
class _Root:
    path: Path  # folder the sources are relative to
    root_id: str
    files: list[Path]
    whole_folder: bool  # files missing from `files` were deleted


@dataclass
class _Pending:
    source: str
    doc_key: str
    file_hash: str
    old_ids: list[str]
    is_update: bool
    title: str
    tags: str
    kind: str
    chunks: list


def doc_key(root_id: str, source: str) -> str:
    return hashlib.sha1(f"{root_id}\0{source}".encode()).hexdigest()[:20]


def file_hash(data: bytes) -> str:
    return hashlib.sha256(CHUNKER_VERSION.encode() + b"\0" + data).hexdigest()


def ingest(
    paths: Iterable[str | os.PathLike],
    collection: str = "default",
    progress: bool = True,
    strict: bool = False,
    *,
    chroma_url: str | None = None,
    libraries: bool = False,
) -> IngestSummary:
    """Index files and folders into `collection`. Skipped files are listed with reasons; with
    `strict=True` any skip raises IngestError (after the other files are indexed). `libraries`
    also indexes the installed libraries' parameter docs (knowledge.library_docs)."""
    stores.check_collection_name(collection)
    roots = [_resolve(Path(p)) for p in paths]
    library_skips: list[dict] = []
    if libraries:
        library_root, library_skips = _library_root()
        roots.append(library_root)
    if not roots:
        raise KnowledgeError("nothing to ingest: give at least one file or folder (or --libraries)")
    st = stores.get_store(chroma_url)
    summary = run(roots, collection, st, get_embedder(), progress=progress)
    summary.skipped += library_skips
    if strict and summary.skipped:
        raise IngestError(summary)
    return summary


def sync_shipped(st: stores.Store, collection: str = "default", progress: bool = False) -> IngestSummary | None:
    """Bring the shipped corpus in `collection` up to date; cheap when nothing changed (a stat of
    each doc, compared with the stamp left by the last sync). Returns None when nothing was done."""
    embedder = get_embedder()
    physical = st.physical_name(collection, embedder.name)
    stamp = st.local_dir() / f"{physical}.shipped"
    files = walk(docs_path()) if docs_path().is_dir() else []
    library_root, _ = _library_root()  # the default collection also holds the libraries' parameter docs
    signature = _signature(files + library_root.files, embedder.name)
    try:
        if stamp.read_text() == signature and st.open(collection, embedder.name, create=False) is not None:
            return None
    except OSError:
        pass
    root = _Root(docs_path(), SHIPPED_ROOT, files, whole_folder=True)
    summary = run([root, library_root], collection, st, embedder, progress=progress, wait=False)
    if summary is not None:
        stamp.write_text(signature)
    return summary


def _signature(files: list[Path], embedder_name: str) -> str:
    digest = hashlib.sha1(f"{CHUNKER_VERSION}\0{embedder_name}".encode())
    for f in files:
        try:
            s = f.stat()
        except OSError:
            continue
        digest.update(f"{f}\0{s.st_size}\0{s.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _library_root() -> tuple[_Root, list[dict]]:
    """The installed libraries' parameter docs as one more root (rewritten first when a version
    changed, so the ingest replaces exactly those passages), and what could not be documented."""
    docs = library_docs.ensure_current()
    return _Root(docs.folder, library_docs.ROOT_ID, walk(docs.folder), whole_folder=True), docs.skipped


def _resolve(path: Path) -> _Root:
    path = path.expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    path = path.resolve()
    if path.is_dir():
        root_id = SHIPPED_ROOT if path == docs_path().resolve() else str(path)
        return _Root(path, root_id, walk(path), whole_folder=True)
    return _Root(path.parent, str(path.parent), [path], whole_folder=False)


def run(roots: list[_Root], collection: str, st: stores.Store, embedder: Embedder, progress: bool = True, wait: bool = True):
    """The ingest itself, under the collection lock. Returns None if `wait` is off and another
    ingest holds the lock."""
    started = time.perf_counter()
    physical = st.physical_name(collection, embedder.name)
    summary = IngestSummary(collection=collection, store=st.location, roots=[str(r.path) for r in roots])
    with st.writer_lock(physical, wait=wait) as locked:
        if not locked:
            return None
        col = st.open(collection, embedder.name, create=True)
        writer = _Writer(st, col, embedder, summary)
        # A dirty revision left by an interrupted run must be healed even if nothing changes now.
        current = stores.revision(col)
        writer.dirty = not current or current.startswith("dirty") or current == "new"
        total = sum(len(r.files) for r in roots)
        with progress_bar(disable=not progress or total == 0, transient=True) as bars:
            task = bars.add_task("ingest", total=total)
            for root in roots:
                _ingest_root(root, writer, summary, lambda: bars.advance(task))
            writer.flush()
        if writer.dirty:
            _publish(st, col, physical)
        summary.chunks_total = col.count()
    summary.seconds = time.perf_counter() - started
    return summary


def _publish(st: stores.Store, col, physical: str) -> None:
    """A fresh BM25 snapshot, then the revision that names it."""
    path = st.snapshot_path(physical)
    ids, docs, metas = stores.all_chunks(col)
    revision = uuid.uuid4().hex
    snap = bm25_index.build(ids, docs, metas, revision, previous=bm25_index.load(path))
    bm25_index.save(snap, path)
    st.set_revision(col, revision)


def _ingest_root(root: _Root, writer: "_Writer", summary: IngestSummary, advance: Callable[[], None]) -> None:
    states = stores.file_states(writer.col, root.root_id)
    label = "shipped docs" if root.root_id == SHIPPED_ROOT else str(root.path)
    if root.whole_folder and not root.files:
        summary.skipped.append({"path": label, "reason": f"no supported documents ({', '.join(sorted(SUPPORTED))}) in this folder"})
    seen: set[str] = set()
    for path in root.files:
        source = path.relative_to(root.path).as_posix()
        key = doc_key(root.root_id, source)
        seen.add(key)
        state = states.get(key)
        old_ids = state.ids if state else []
        try:
            data = read_bytes(path)
        except LoadError as exc:
            writer.drop(source, old_ids, summary, str(exc))
            advance()
            continue
        fingerprint = file_hash(data)
        # The same bytes under a second name would be cited twice: index the first, name the rest.
        where = source if root.root_id == SHIPPED_ROOT else f"{label}/{source}"
        twin = writer.first_with.setdefault(fingerprint, where)
        if twin != where:
            writer.drop(source, old_ids, summary, f"duplicate of {twin} (same content); indexed once")
            advance()
            continue
        if state is not None and state.complete_for(fingerprint):
            summary.unchanged.append(source)
            advance()
            continue
        try:
            doc = load(path, data)
            chunks = chunk(doc)
            if not chunks:
                raise LoadError("no text to index")
        except LoadError as exc:
            writer.drop(source, old_ids, summary, str(exc))
            advance()
            continue
        writer.add(
            _Pending(
                source=source,
                doc_key=key,
                file_hash=fingerprint,
                old_ids=old_ids,
                is_update=state is not None,
                title=doc.title,
                tags=", ".join(doc.tags),
                kind=path.suffix.lower().lstrip("."),
                chunks=chunks,
            ),
            root.root_id,
        )
        advance()
    if root.whole_folder:
        for key, state in states.items():
            if key not in seen:
                writer.remove(state.ids)
                summary.removed.append(state.source)


class _Writer:
    """Embeds pending files in batches and commits them to Chroma one file at a time."""

    def __init__(self, st: stores.Store, col, embedder: Embedder, summary: IngestSummary):
        self.store = st
        self.col = col
        self.embedder = embedder
        self.summary = summary
        self.pending: list[tuple[_Pending, str]] = []
        self.dirty = False  # the BM25 snapshot and revision must be renewed at the end
        self._marked = False
        self.first_with: dict[str, str] = {}  # file fingerprint -> the first file of this run with it

    def _mark_dirty(self) -> None:
        """Before this run's first write: readers must stop trusting the current BM25 snapshot."""
        if not self._marked:
            self.store.set_revision(self.col, "dirty-" + uuid.uuid4().hex)
            self._marked = True
        self.dirty = True

    def add(self, item: _Pending, root_id: str) -> None:
        self.pending.append((item, root_id))
        if sum(len(p.chunks) for p, _ in self.pending) >= EMBED_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        texts = [passage(p.title, c.heading, c.text) for p, _ in self.pending for c in p.chunks]
        vectors = self.embedder.embed(texts)
        row = 0
        for item, root_id in self.pending:
            n = len(item.chunks)
            self._commit(item, root_id, vectors[row : row + n])
            row += n
        self.pending = []

    def _commit(self, item: _Pending, root_id: str, vectors) -> None:
        self._mark_dirty()
        n = len(item.chunks)
        ids = [f"{item.doc_key}-{item.file_hash[:12]}-{c.index}" for c in item.chunks]
        metas = [
            {
                "source": item.source,
                "root": root_id,
                "doc_key": item.doc_key,
                "file_hash": item.file_hash,
                "n_chunks": n,
                "chunk_index": c.index,
                "heading": c.heading,
                "title": item.title,
                "tags": item.tags,
                "lang": c.lang,
                "kind": item.kind,
                "page": c.page or 0,
                "content_hash": hashlib.sha1(c.text.encode()).hexdigest()[:16],
            }
            for c in item.chunks
        ]
        stores.replace_file(self.col, ids, vectors.tolist(), [c.text for c in item.chunks], metas, item.old_ids)
        (self.summary.updated if item.is_update else self.summary.added).append(item.source)
        self.summary.chunks += n

    def remove(self, ids: list[str]) -> None:
        if ids:
            self._mark_dirty()
            stores.delete_ids(self.col, ids)

    def drop(self, source: str, old_ids: list[str], summary: IngestSummary, reason: str) -> None:
        """A file that can no longer be indexed also leaves the index (it would cite stale text)."""
        self.remove(old_ids)
        summary.skipped.append({"path": source, "reason": reason})
