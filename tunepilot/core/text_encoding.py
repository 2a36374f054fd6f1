"""Bytes -> text for every file a user hands us (training data, eval sets, documents).

One policy everywhere, so a GBK CSV that trains also evaluates and indexes: a BOM decides
(UTF-8 or UTF-16); NUL bytes mean a binary file; then strict UTF-8; then GB18030 (a superset of
GBK, what Chinese Windows tools write) when the result reads as ordinary Chinese; then a
statistical guess. Never returns mojibake silently: an undecidable file raises.
"""

from __future__ import annotations

import codecs
import re

_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


class UndecodableText(ValueError):
    """The bytes are binary or in no encoding we can tell; the message says which."""


def decode_text(data: bytes) -> tuple[str, str]:
    """The text and the name of the encoding it was found in."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace"), "utf-16"
    if b"\x00" in data[:8192]:
        raise UndecodableText("binary content (NUL bytes), not text")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # A strict GB18030 decode that yields ordinary Chinese (no private-use code points) is trusted
    # before a statistical guess, which mistakes short GBK text for Big5.
    try:
        text = data.decode("gb18030")
        non_ascii = [c for c in text if ord(c) > 127]
        cjk = sum(1 for c in non_ascii if "\u3000" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef")
        if not _PRIVATE_USE.search(text) and non_ascii and cjk / len(non_ascii) > 0.9:
            return text, _narrowest_chinese_codec(data)
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise UndecodableText("unknown text encoding (not UTF-8, GBK/GB18030 or another common one)")
    return str(best), best.encoding


def _narrowest_chinese_codec(data: bytes) -> str:
    """Report "gbk" when GBK suffices: it is the name users know from their tools."""
    try:
        data.decode("gbk")
        return "gbk"
    except UnicodeDecodeError:
        return "gb18030"
