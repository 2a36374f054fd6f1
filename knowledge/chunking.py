"""Split a loaded document into retrieval chunks that remember their heading path.

Markdown is first cut at headings (LangChain's `ExperimentalMarkdownSyntaxTextSplitter`, which keeps
whitespace and leaves fenced code alone), then long sections are cut by
`RecursiveCharacterTextSplitter` at paragraph, line and sentence boundaries, Chinese ones
(。！？；) included. Length counts a Chinese character double: it carries about a word's meaning
and one tokenizer token, so Chinese chunks hold roughly as much as English ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_text_splitters import (
    ExperimentalMarkdownSyntaxTextSplitter,
    RecursiveCharacterTextSplitter,
)

from knowledge.loaders import LoadedDoc
from tunepilot.core.language import CJK_CHAR, detect_lang

# Bump when loading, chunk boundaries or chunk metadata change: every file is then re-embedded once.
CHUNKER_VERSION = "3"
CHUNK_SIZE = 1000
CHUNK_OVERLAP = 120
MIN_CHUNK = 100
_HEADERS = [("#" * n, f"h{n}") for n in range(1, 7)]
_SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", ", ", " ", ""]
_MEANINGFUL = re.compile(r"[\w\u3400-\u9fff]")


@dataclass
class Chunk:
    text: str  # what a reader sees: the passage itself, no heading
    heading: str  # heading path, "LoRA > Rank and alpha"; "" before the first heading
    lang: str
    index: int
    page: int | None = None


def weighted_len(text: str) -> int:
    return len(text) + len(CJK_CHAR.findall(text))


def _splitter() -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        separators=_SEPARATORS,
        keep_separator="end",
        chunk_size=CHUNK_SIZE,
        chunk_overlap=CHUNK_OVERLAP,
        length_function=weighted_len,
        strip_whitespace=True,
    )


def _clean_heading(text: str) -> str:
    text = re.sub(r"\s*\{#[^}]*\}\s*$", "", text)  # "## Title {#anchor}"
    text = re.sub(r"\s+#+\s*$", "", text)  # closing hashes
    return text.replace("**", "").replace("__", "").strip()


def _sections(doc: LoadedDoc) -> list[tuple[str, str, int | None]]:
    """(heading path, text, page) in document order."""
    out: list[tuple[str, str, int | None]] = []
    for part in doc.parts:
        page = part.metadata.get("page")
        if doc.kind != "markdown":
            out.append(("", part.page_content, page))
            continue
        pieces = ExperimentalMarkdownSyntaxTextSplitter(headers_to_split_on=_HEADERS, strip_headers=True).split_text(
            part.page_content
        )
        # The splitter makes each code block its own piece; put them back with their section.
        for piece in pieces:
            path = " > ".join(_clean_heading(piece.metadata[k]) for _, k in _HEADERS if piece.metadata.get(k))
            if out and out[-1][0] == path:
                out[-1] = (path, out[-1][1] + piece.page_content, page)
            else:
                out.append((path, piece.page_content, page))
    return out


def _merge_small(pieces: list[str]) -> list[str]:
    """A lead-in such as "check these:" cut off from its list is useless alone: a piece under
    MIN_CHUNK joins its successor in the section (or its predecessor, if it is the last)."""
    pieces = [p.strip() for p in pieces if _MEANINGFUL.search(p)]
    out: list[str] = []
    carry = ""
    for piece in pieces:
        piece = f"{carry}\n\n{piece}" if carry else piece
        carry = ""
        if weighted_len(piece) < MIN_CHUNK:
            carry = piece
        else:
            out.append(piece)
    if carry:
        if out:
            out[-1] = f"{out[-1]}\n\n{carry}"
        else:
            out.append(carry)
    return out


def _lang(doc: LoadedDoc, text: str) -> str:
    declared = (doc.lang or "").lower()
    if declared.startswith("zh") or declared in ("cn", "chinese"):
        return "zh"
    if declared.startswith("en"):
        return "en"
    return detect_lang(text)


def chunk(doc: LoadedDoc) -> list[Chunk]:
    splitter = _splitter()
    chunks: list[Chunk] = []
    for heading, text, page in _sections(doc):
        for piece in _merge_small(splitter.split_text(text)):
            chunks.append(Chunk(text=piece, heading=heading, lang=_lang(doc, piece), index=len(chunks), page=page))
    return chunks


def heading_prefix(title: str, heading: str) -> str:
    """"Title > Section > Subsection" without repeating a title the first heading already states."""
    parts = [p for p in heading.split(" > ") if p] if heading else []
    if title and (not parts or parts[0].strip().lower() != title.strip().lower()):
        parts.insert(0, title)
    return " > ".join(parts)


def passage(title: str, heading: str, text: str) -> str:
    """What the embedding model (and a reranker) reads for a chunk: where it sits, then the text."""
    return f"{heading_prefix(title, heading)}\n{text}"
