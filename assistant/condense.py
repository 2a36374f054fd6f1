"""Question condensing: turn a follow-up ("and for QLoRA?", "那 QLoRA 呢？") into a standalone question.

Retrieval sees one question at a time, so a follow-up must carry the topic of the conversation.
The deterministic rules (no LLM needed), tried in order:

1. swap: the follow-up names a thing of the same kind as one in the previous user question
   (a method, an optimizer, a model family) -> the previous question with that thing swapped
   ("What learning rate for LoRA?" + "and for QLoRA?" -> "What learning rate for QLoRA?");
2. pronoun: the follow-up refers back with it/this/that/它/这个 -> the pronoun becomes the previous
   question's main subject;
3. carry: a short or explicitly elliptical follow-up ("what about ...", "...呢") is joined to the
   previous question;
4. otherwise the question already stands alone and is returned unchanged.

With an LLM engine, the model is asked to rewrite first; any failure falls back to the rules.
"""

from __future__ import annotations

import re

from tunepilot.core.language import content_terms, detect_lang

# Things of one kind can replace each other in a follow-up. Longest names first so "qlora" wins over "lora".
ENTITY_KINDS: dict[str, list[str]] = {
    "method": ["full fine-tuning", "full fine-tune", "qlora", "lora", "dora", "freeze", "全量微调", "全参数微调", "全量", "冻结"],
    "optimizer": ["paged adamw", "adamw8bit", "adamw_8bit", "adamw", "adafactor", "lion", "sgd", "adam"],
    "model": ["gemma-3-270m", "gemma", "qwen2.5", "qwen", "llama", "mistral", "phi", "deepseek", "chatglm"],
    "format": ["sharegpt", "alpaca", "jsonl", "csv", "json"],
}

_LEAD_EN = re.compile(r"^(and|so|then|also|ok(ay)?|what about|how about|and what about|and for|what if|same for|for)\b[\s,]*", re.I)
_LEAD_ZH = re.compile(r"^(那么|那|还有|另外|再问一下|如果是|换成|对于)[\s，,]*")
_TAIL_ZH = re.compile(r"[呢吗][？?]?$")
_PRONOUN_EN = re.compile(r"\b(it|its|this|that|them|they)\b", re.I)
_DUMMY_IT = re.compile(r"\b(is it|it is|it's|does it matter|it takes)\s+(possible|ok|okay|fine|better|worth|necessary|normal|true|a good idea|long)", re.I)
_PRONOUN_ZH = re.compile(r"(它们|它|这个|那个|这种|该方法)")




def _entities(text: str) -> dict[str, str]:
    low = text.lower()
    found: dict[str, str] = {}
    for kind, names in ENTITY_KINDS.items():
        for name in names:
            if re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", low):
                found.setdefault(kind, name)
    return found


def _original_case(text: str, name: str) -> str:
    m = re.search(re.escape(name), text, flags=re.I)
    return m.group(0) if m else name


def previous_user_question(history: list[dict] | None) -> str | None:
    for turn in reversed(history or []):
        if turn.get("role") == "user" and str(turn.get("content", "")).strip():
            return str(turn["content"]).strip()
    return None


def _is_elliptical(question: str, lang: str) -> bool:
    if lang == "zh":
        return bool(_LEAD_ZH.match(question) or _TAIL_ZH.search(question.strip()))
    return bool(_LEAD_EN.match(question.strip()))


def _core(question: str, lang: str) -> str:
    q = question.strip()
    if lang == "zh":
        q = _TAIL_ZH.sub("", _LEAD_ZH.sub("", q))
        return q.strip(" ？?。")
    return _LEAD_EN.sub("", q).strip(" ?.")


def condense_rules(question: str, history: list[dict] | None) -> str:
    """The deterministic rewrite (see the module docstring)."""
    previous = previous_user_question(history)
    if not previous:
        return question
    lang = detect_lang(question + " " + previous)
    follow = _entities(question)
    before = _entities(previous)
    elliptical = _is_elliptical(question, lang)
    short = len(content_terms(question)) <= 3
    # 1. swap a same-kind entity, only in a short or elliptical follow-up: a full question that
    #    happens to name another method ("How does QLoRA quantize the base?") stands on its own.
    for kind, name in (follow.items() if (short or elliptical) else ()):
        old = before.get(kind)
        if old and old != name:
            new_text = _original_case(question, name)
            return re.sub(re.escape(old), lambda _m: new_text, previous, count=1, flags=re.I)
    # 2. pronoun -> the previous question's subject ("is it possible ..." uses "it" for nothing)
    subject = next(iter(before.values()), None)
    pronoun = _PRONOUN_ZH if lang == "zh" else _PRONOUN_EN
    if subject and not follow and pronoun.search(question) and not _DUMMY_IT.search(question):
        subject_text = _original_case(previous, subject)
        return pronoun.sub(lambda _m: subject_text, question, count=1)
    # 3. carry the previous question for short or elliptical follow-ups
    few_terms = len(content_terms(question)) <= 2
    if elliptical or (few_terms and (follow or pronoun.search(question))):
        core = _core(question, lang)
        if lang == "zh":
            return f"{previous.rstrip('？?。')}，{core}？" if core else previous
        return f"{previous.rstrip(' ?.')}: {core}?" if core else previous
    return question


def condense(question: str, history: list[dict] | None, engine=None) -> str:
    """A standalone version of `question` given the chat `history` ([{"role","content"}, ...])."""
    if not previous_user_question(history):
        return question
    if engine is not None and getattr(engine, "uses_llm", False):
        from assistant.engines.base import EngineUnavailable
        from assistant.engines.prompts import condense_messages

        try:
            rewritten = engine.complete(condense_messages(question, list(history or []), detect_lang(question)))
            rewritten = rewritten.strip().strip('"').splitlines()[0].strip() if rewritten.strip() else ""
            if 3 <= len(rewritten) <= 4 * len(question) + 400:
                return rewritten
        except EngineUnavailable:
            pass
    return condense_rules(question, history)
