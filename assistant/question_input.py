"""Questions that are not plain prose: only code, only a link, or a long pasted log.

People paste what they have. A question that is only a code block, only a URL, or a few lines of
text above two hundred lines of training log still asks something; searching the raw paste would
match the log's noise (timestamps, progress bars, tensor dumps) instead of its meaning. This module
turns such input into the words worth searching for and says, in a notice, what it did, so nothing
is dropped silently:

* only a URL: the words of its host and path ("huggingface.co/docs/peft/.../lora" -> "peft lora");
* only code: the identifiers, string literals and any error line in it;
* a long paste with log or traceback lines: the prose lines (the question) plus the error lines
  (the last exception of a traceback, "CUDA out of memory", "loss is nan", Chinese "报错"), the rest
  left out and counted in the notice.

Short prose questions pass through unchanged.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlparse

from tunepilot.core.language import detect_lang

LONG_PASTE_CHARS = 600  # below this a paste is read as it is
MAX_ERROR_LINES = 3

_URL = re.compile(r"^(?:https?://|www\.)\S+$", re.I)
_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|$)", re.S)
# Lines a program printed rather than a person typed.
_LOG_LINE = re.compile(
    r"^\s*(?:\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d|\d\d:\d\d:\d\d|traceback \(most recent call last\)|file \"[^\"]+\", line \d+"
    r"|(?:info|warning|warn|error|debug|critical)\b[:\]]|\[(?:info|warning|error|debug)\]|\{['\"]?(?:loss|epoch|step)['\"]?\s*:"
    r"|\d+%\|.*\||.*\d+/\d+ \[\d\d:\d\d|at [\w.$]+\(|\s{2,}\S|>>> |\$ )",
    re.I,
)
_ERROR_LINE = re.compile(
    r"(?:\w+(?:error|exception|warning)\b:?|out of memory|\bnan\b|\binf\b|killed|segmentation fault|not found|"
    r"cannot|can't|could not|failed|报错|错误|异常|失败)",
    re.I,
)
_CODE_LINE = re.compile(
    r"^\s*(?:from \w|import \w|def |class |return\b|if .*:$|for .*:$|with .*:$|[\w.\[\]'\"]+\s*=\s*\S|\w[\w.]*\(.*\)\s*$"
    r"|[{}\[\]();]+$|#|//|\$ |pip |python |accelerate |torchrun |--\w)"
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_STRING = re.compile(r"[\"']([^\"'\n]{2,80})[\"']")
_CODE_WORDS = set("""from import def class return if else elif for while with as in not and or is none true false
self print lambda try except finally raise pass yield async await""".split())

_NOTICES = {
    "url": {"en": "Your question is only a link; I searched for the words in it: {words}.",
            "zh": "问题只有一个链接；按其中的词检索：{words}。"},
    "code": {"en": "Your question is only code; I searched for its names and errors: {words}.",
             "zh": "问题只有代码；按其中的名称和报错检索：{words}。"},
    "log": {"en": "Your message holds {n} lines of log or traceback; I used your question and the error line(s) and left out {left} other lines.",
            "zh": "消息里有 {n} 行日志或报错堆栈；只使用了你的问题和报错行，其余 {left} 行未使用。"},
}


def _notice(kind: str, lang: str, **kw) -> str:
    return _NOTICES[kind][lang if lang in ("en", "zh") else "en"].format(**kw)


def url_words(url: str) -> str:
    """The meaningful words of a link: host name parts and path segments, without the noise."""
    parsed = urlparse(url if "://" in url else f"http://{url}")
    host = [p for p in (parsed.hostname or "").split(".") if p not in ("www", "com", "org", "io", "co", "net", "docs", "en")]
    path = re.split(r"[/_\-.#?=&+\s]+", unquote(parsed.path + " " + (parsed.fragment or "")))
    noise = {"main", "en", "zh", "docs", "doc", "html", "htm", "md", "index", "latest", "stable", "blob", "tree", "wiki", "v1", "v2"}
    words = [w for w in host + path if w and w.lower() not in noise and not w.isdigit()]
    return " ".join(dict.fromkeys(words))


def _code_words(code: str) -> list[str]:
    words: dict[str, None] = {}
    for line in code.splitlines():
        if _ERROR_LINE.search(line) and not _CODE_LINE.match(line):
            words.setdefault(line.strip(), None)
    for literal in _STRING.findall(code):
        if re.search(r"[A-Za-z\u4e00-\u9fff]{2}", literal):
            words.setdefault(literal, None)
    for ident in _IDENT.findall(code):
        last = ident.split(".")[-1]
        if last.lower() not in _CODE_WORDS and len(last) > 2:
            words.setdefault(last, None)
    return list(words)


def _is_code(text: str) -> bool:
    lines = [l for l in text.splitlines() if l.strip()]
    return bool(lines) and sum(bool(_CODE_LINE.match(l)) for l in lines) >= max(1, 0.6 * len(lines))


def short_error(line: str) -> str:
    """An error line without its details: "torch.OutOfMemoryError: CUDA out of memory. Tried to
    allocate 2.00 GiB ..." -> "torch.OutOfMemoryError: CUDA out of memory." (the numbers after the
    first sentence are this run's, not words a doc would share)."""
    line = line.strip()
    first = re.match(r"(.+?[.!?。])(\s|$)", line)
    return (first.group(1) if first else line)[:200]


def error_lines(text: str) -> list[str]:
    """The lines of `text` that report an error (what a question about a failure is about)."""
    return [l.strip() for l in text.splitlines() if l.strip() and _ERROR_LINE.search(l)]


def prepare_question(question: str, notices: list[str]) -> str:
    """The text to search and answer for `question` (see the module docstring); notices explain
    any change in the question's language."""
    q = question.strip()
    lang = detect_lang(q)
    if _URL.match(q):
        words = url_words(q)
        if words:
            notices.append(_notice("url", lang, words=words))
            return words
        return q
    prose_outside = _FENCE.sub("", q).strip()
    if (_FENCE.search(q) and not prose_outside) or (not _FENCE.search(q) and "\n" in q and _is_code(q)):
        code = "\n".join(_FENCE.findall(q)) or q
        words = _code_words(code)[:12]
        if words:
            notices.append(_notice("code", lang, words=", ".join(words)))
            return " ".join(words)
        return q
    if len(q) < LONG_PASTE_CHARS:
        return q
    lines = [l.rstrip() for l in _FENCE.sub(lambda m: m.group(1), q).splitlines()]
    logged = [l for l in lines if l.strip() and (_LOG_LINE.match(l) or _CODE_LINE.match(l))]
    if len(logged) < 3:
        return q  # long prose: the caller trims it
    prose = [l.strip() for l in lines if l.strip() and l not in logged and not _ERROR_LINE.search(l)]
    errors = [l.strip() for l in lines if l.strip() and _ERROR_LINE.search(l)]
    # The last error lines say what finally went wrong (a traceback ends with the exception).
    errors = [short_error(e) for e in list(dict.fromkeys(errors))[-MAX_ERROR_LINES:]]
    kept = prose + errors
    lang = detect_lang("\n".join(prose)) if prose else lang
    left = sum(1 for l in lines if l.strip()) - len(kept)
    notices.append(_notice("log", lang, n=len(logged), left=left))
    return "\n".join(kept) if kept else q
