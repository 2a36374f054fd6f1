"""Find documents under a path and load each one as clean text (LangChain `Document`s).

Every supported type becomes either Markdown (headings kept as `#` lines so the chunker can follow
them: .md, .mdx, .rst, .html) or plain text (.txt, and .pdf per page). What is not content is
removed here: YAML/TOML front matter (its title/lang/tags/sources become metadata), HTML comments,
license headers, MDX imports, rst comments. A file that cannot be used raises `LoadError` with the
reason the ingest summary shows.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.documents import Document

from tunepilot.core.settings import settings
from tunepilot.core.text_encoding import UndecodableText, decode_text

SUPPORTED = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "mdx",
    ".txt": "text",
    ".rst": "rst",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
IGNORED_DIRS = {"node_modules", "__pycache__", "site-packages", "venv", "_build", "build", "dist"}


class LoadError(Exception):
    """This file is skipped; the message is the reason."""


@dataclass
class LoadedDoc:
    kind: str  # "markdown" (headings as `#` lines) or "text"
    title: str
    parts: list[Document]  # one per PDF page, else one
    lang: str | None = None  # from front matter; None = detect per chunk
    tags: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    encoding: str = "utf-8"


# --------------------------------------------------------------------------- discovery


def max_file_bytes() -> int:
    return int(settings().max_file_mb * 1024 * 1024)


def walk(root: Path) -> list[Path]:
    """Supported files under `root`, sorted; hidden files/folders and build/vendor folders skipped."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=None, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in IGNORED_DIRS)
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED:
                found.append(Path(dirpath) / name)
    return found


# --------------------------------------------------------------------------- bytes -> text

def decode(data: bytes) -> tuple[str, str]:
    """Text and the encoding found, with the shared policy (tunepilot.core.text_encoding)."""
    try:
        return decode_text(data)
    except UndecodableText as exc:
        raise LoadError(str(exc)) from None


def read_bytes(path: Path) -> bytes:
    """The file's bytes; LoadError for unreadable, empty or too large files (those are not read)."""
    try:
        size = path.stat().st_size
        limit = max_file_bytes()
        if size > limit:
            raise LoadError(
                f"too large ({size / 2**20:.1f} MB > {limit / 2**20:.0f} MB; raise TUNEPILOT_MAX_FILE_MB to index it)"
            )
        if size == 0:
            raise LoadError("empty file")
        return path.read_bytes()
    except OSError as exc:
        raise LoadError(f"unreadable ({exc.strerror or exc})") from None


# --------------------------------------------------------------------------- cleaning

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_MDX_COMMENT = re.compile(r"\{/\*.*?\*/\}", re.S)
_MDX_IMPORT = re.compile(r"^(import|export)\s.*$", re.M)
_LICENSE = re.compile(
    r"copyright|licen[cs]ed under|spdx-license-identifier|all rights reserved|"
    r"permission is hereby granted|apache license|gnu (lesser )?general public|mit license",
    re.I,
)


def split_front_matter(text: str) -> tuple[dict, str]:
    """(metadata, body) for YAML (`---`) or TOML (`+++`) front matter at the very top."""
    stripped = text.lstrip("\ufeff")
    for fence, parse in (("---", _parse_yaml), ("+++", _parse_toml)):
        if not stripped.startswith(fence + "\n") and not stripped.startswith(fence + "\r\n"):
            continue
        lines = stripped.splitlines(keepends=True)
        for i in range(1, min(len(lines), 400)):
            if lines[i].strip() in (fence, "...") and (fence == "---" or lines[i].strip() == fence):
                meta = parse("".join(lines[1:i]))
                return (meta if isinstance(meta, dict) else {}), "".join(lines[i + 1 :])
    return {}, text


def _parse_yaml(src: str):
    import yaml

    try:
        return yaml.safe_load(src)
    except yaml.YAMLError:
        return {}


def _parse_toml(src: str):
    import tomllib

    try:
        return tomllib.loads(src)
    except tomllib.TOMLDecodeError:
        return {}


def map_outside_fences(text: str, fn) -> str:
    """Apply `fn` to the parts of Markdown that are not fenced code (code examples stay verbatim)."""
    out: list[str] = []
    buf: list[str] = []
    in_fence = False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            if not in_fence:
                out.append(fn("".join(buf)))
                buf = []
            else:
                out.append("".join(buf) + line)
                buf = []
                in_fence = False
                continue
            in_fence = True
        buf.append(line)
    out.append("".join(buf) if in_fence else fn("".join(buf)))
    return "".join(out)


def close_open_fence(text: str) -> str:
    """An unclosed ``` would make the Markdown splitter drop the rest of the file."""
    n = sum(1 for line in text.splitlines() if _FENCE.match(line))
    return text + "\n```\n" if n % 2 else text


def strip_license_header(text: str) -> str:
    """Drop the copyright/license paragraphs a file opens with (at most four)."""
    paragraphs = re.split(r"(\n\s*\n)", text.lstrip("\n"))
    i = dropped = 0
    while i < len(paragraphs) and dropped < 4:
        para = paragraphs[i]
        if para.strip():
            if len(para) > 3000 or not _LICENSE.search(para):
                break
            dropped += 1
        i += 1
    return "".join(paragraphs[i:]) if dropped else text


def clean_markdown(text: str, mdx: bool = False) -> str:
    def clean(part: str) -> str:
        part = _HTML_COMMENT.sub("", part)
        if mdx:
            part = _MDX_COMMENT.sub("", part)
            part = _MDX_IMPORT.sub("", part)
        return part

    return strip_license_header(map_outside_fences(text, clean))


# --------------------------------------------------------------------------- reStructuredText

_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")
_RST_ROLE = re.compile(r":[a-zA-Z:_-]+:`([^`<]*?)(?:\s*<[^>]*>)?`")
_RST_DIRECTIVE = re.compile(r"^\.\.\s+([\w:-]+)::\s*(.*)$")
_RST_DROP = {
    "toctree", "image", "figure", "include", "literalinclude", "raw", "only", "contents", "index",
    "highlight", "currentmodule", "module", "automodule", "autoclass", "autofunction", "automethod",
    "autosummary", "autodata", "autoattribute", "meta", "sectionauthor", "plot", "minigallery",
}


def rst_to_markdown(text: str) -> str:
    """Section titles -> `#` headings by the order their adornment first appears; comments dropped;
    literal blocks and code directives fenced; roles reduced to their text."""
    lines = text.splitlines()
    out: list[str] = []
    styles: list[tuple[str, bool]] = []
    i = 0
    n = len(lines)

    def indented_block(start: int) -> int:
        j = start
        while j < n and (not lines[j].strip() or lines[j].startswith((" ", "\t"))):
            j += 1
        return j

    while i < n:
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < n else ""
        # overline + title + underline
        if _RST_UNDERLINE.match(line) and i + 2 < n and _RST_UNDERLINE.match(lines[i + 2]) and lines[i + 1].strip():
            style = (line.strip()[0], True)
            title = lines[i + 1].strip()
            i += 3
        elif line.strip() and not line.startswith((" ", "\t")) and _RST_UNDERLINE.match(nxt) and len(nxt.strip()) >= len(line.strip()) - 1:
            style = (nxt.strip()[0], False)
            title = line.strip()
            i += 2
        else:
            style = None
        if style is not None:
            if style not in styles:
                styles.append(style)
            level = min(styles.index(style) + 1, 6)
            out += ["", "#" * level + " " + _RST_ROLE.sub(r"\1", title), ""]
            continue
        directive = _RST_DIRECTIVE.match(line)
        if line.startswith(".."):
            end = indented_block(i + 1)
            name = directive.group(1) if directive else ""
            body = _dedent(lines[i + 1 : end])
            while body and (body[0].lstrip().startswith(":") or not body[0].strip()):
                body = body[1:]  # the directive's option lines
            if name in ("code-block", "code", "sourcecode"):
                out += ["```" + directive.group(2).strip(), *_trim_blank(body), "```"]
            elif directive and name not in _RST_DROP:
                # Admonitions, dropdowns, rubrics, tabs ...: their title and body are prose. Both
                # go back into the stream in place of the directive, so what they contain (code,
                # nested directives) is converted too.
                title = directive.group(2).strip()
                lines[i:end] = ([title, ""] if title else []) + body + [""]
                n = len(lines)
                continue
            # comments, link targets, substitutions, toctrees, images ...: not prose
            i = end
            continue
        if line.rstrip().endswith("::") and not line.strip().startswith(".."):
            prose = line.rstrip()[:-1].rstrip()
            if prose.endswith(":"):
                prose = prose[:-1]
            out.append(_RST_ROLE.sub(r"\1", prose + (":" if prose else "")))
            end = indented_block(i + 1)
            body = lines[i + 1 : end]
            if any(b.strip() for b in body):
                out += ["", "```", *_trim_blank(_dedent(body)), "```", ""]
            i = end
            continue
        out.append(_RST_ROLE.sub(r"\1", line).replace("``", "`"))
        i += 1
    return "\n".join(out) + "\n"


def _dedent(block: list[str]) -> list[str]:
    widths = [len(b) - len(b.lstrip()) for b in block if b.strip()]
    cut = min(widths) if widths else 0
    return [b[cut:] for b in block]


def _trim_blank(block: list[str]) -> list[str]:
    while block and not block[0].strip():
        block = block[1:]
    while block and not block[-1].strip():
        block = block[:-1]
    return block


# --------------------------------------------------------------------------- HTML

_BLOCK_TAGS = {"p", "div", "section", "article", "main", "blockquote", "table", "tr", "ul", "ol", "dl", "dd", "dt", "figure", "figcaption", "br", "hr"}


def html_to_markdown(html: str) -> tuple[str, str]:
    """(title, Markdown) with headings as `#` lines, code as fences, list items as `- `."""
    from bs4 import BeautifulSoup, Comment, NavigableString

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "nav", "footer", "header", "form", "svg", "template", "iframe", "head"]):
        tag.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    for pre in root.find_all("pre"):
        pre.replace_with(NavigableString("\n\n```\n" + pre.get_text().strip("\n") + "\n```\n\n"))
    for text_node in root.find_all(string=True):
        if isinstance(text_node, NavigableString) and not text_node.startswith("\n\n```"):
            text_node.replace_with(re.sub(r"\s+", " ", str(text_node)))
    for level in range(1, 7):
        for h in root.find_all(f"h{level}"):
            h.replace_with(NavigableString(f"\n\n{'#' * level} {h.get_text(' ', strip=True)}\n\n"))
    for li in root.find_all("li"):
        li.insert_before(NavigableString("\n- "))
    for tag in root.find_all(list(_BLOCK_TAGS) + ["td", "th"]):
        tag.insert_after(NavigableString(" | " if tag.name in ("td", "th") else "\n\n"))
    text = root.get_text()
    text = map_outside_fences(text, lambda part: re.sub(r"[ \t]*\n[ \t]*", "\n", part))
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return title, text


# --------------------------------------------------------------------------- entry point


def _first_heading(markdown: str) -> str:
    found = re.search(r"^#\s+(.+?)\s*#*\s*$", markdown, re.M)
    return found.group(1).strip() if found else ""


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) if not isinstance(v, dict) else " ".join(str(x) for x in v.values()) for v in value]
    return [str(value)]


def load(path: Path, data: bytes | None = None) -> LoadedDoc:
    """Load one supported file (`data`: its bytes, if already read); raises LoadError(reason) for
    anything that cannot be indexed."""
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        raise LoadError(f"unsupported file type {path.suffix or '(none)'}; supported: {', '.join(sorted(set(SUPPORTED)))}")
    if data is None:
        data = read_bytes(path)
    if kind == "pdf":
        return _load_pdf(path, data)

    text, encoding = decode(data)
    meta, body = split_front_matter(text)
    title = str(meta.get("title") or "").strip()
    if kind in ("markdown", "mdx"):
        body = clean_markdown(body, mdx=kind == "mdx")
        out_kind = "markdown"
    elif kind == "rst":
        body = clean_markdown(rst_to_markdown(body))
        out_kind = "markdown"
    elif kind == "html":
        html_title, body = html_to_markdown(body)
        body = strip_license_header(body)
        title = title or html_title
        out_kind = "markdown"
    else:
        body = strip_license_header(_HTML_COMMENT.sub("", body))
        out_kind = "text"
    if out_kind == "markdown":
        body = close_open_fence(body)
        title = title or _first_heading(body)
    if not body.strip():
        raise LoadError("no text after removing front matter, comments and license header")
    lang = str(meta.get("lang") or meta.get("language") or "").strip().lower() or None
    return LoadedDoc(
        kind=out_kind,
        title=title or path.stem,
        parts=[Document(page_content=body, metadata={})],
        lang=lang,
        tags=_as_list(meta.get("tags")),
        sources=_as_list(meta.get("sources")),
        encoding=encoding,
    )


def _load_pdf(path: Path, data: bytes) -> LoadedDoc:
    import io

    from pypdf import PdfReader

    if not data[:1024].lstrip().startswith(b"%PDF"):
        raise LoadError("broken PDF (no %PDF header)")
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        texts = [page.extract_text() or "" for page in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "").strip()
    except Exception as exc:  # pypdf raises many types for damaged files
        raise LoadError(f"broken PDF ({type(exc).__name__}: {str(exc)[:120]})") from None
    parts = []
    for number, raw in enumerate(texts, start=1):
        text = strip_license_header(raw)
        if text.strip():
            parts.append(Document(page_content=text, metadata={"page": number}))
    if not parts:
        raise LoadError("no extractable text in PDF (scanned images need OCR first)")
    return LoadedDoc(kind="text", title=title or path.stem, parts=parts, encoding="pdf")
