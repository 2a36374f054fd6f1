"""The conversation's draft config: turns edit it, questions leave it alone, "start over" resets it.

`Draft` keeps what every turn said (`assistant.understand` slots; a later value for a field
replaces the earlier one) and rebuilds the whole result after each edit: plan (`assistant.plan`),
fit (`assistant.fit`), validation on the planned target (`trainer.planning.findings.check_config`)
and the memory estimate. A result is the `tunepilot config --from-text --json` shape plus
`understood`, `unread`, `missing`, `changes` (the fields this turn changed), `fit`, `target`,
`this_machine` and a short `reply` that says what changed and what is still missing.

The chat front ends (`tunepilot chat`, the Streamlit chat page) call `classify` to tell an edit from
a question, then `update` for edits; `assistant.config_from_text` runs a list of turns through one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from assistant.understand import Slot, Understanding, detect_training_intent, is_question, understand
from tunepilot.core.language import detect_lang

CONFIG_KEYS = ("config", "validation", "memory_estimate", "explanations")


@dataclass
class Draft:
    slots: dict[str, Slot] = field(default_factory=dict)  # field -> the latest slot for it
    turn_of: dict[str, int] = field(default_factory=dict)
    unread: dict[str, tuple[int, str]] = field(default_factory=dict)  # text -> (turn, field it was about)
    conflicts: dict[str, tuple[int, dict]] = field(default_factory=dict)  # field -> (turn, conflict)
    methods_conflict: list[str] = field(default_factory=list)
    openai_style: bool = False
    turns: int = 0
    result: dict | None = None
    origin: str = "from your request"

    @property
    def active(self) -> bool:
        return self.turns > 0

    def reset(self) -> None:
        self.__init__()

    # ---------------------------------------------------------------- turns

    def classify(self, text: str) -> str:
        """"reset", "edit" (of the draft, or a new request) or "question" (answer it, keep the draft)."""
        u = understand(text)
        if u.reset:
            return "reset"
        said = bool(u.slots or u.unread or u.methods_mentioned or u.openai_style)
        if self.active:
            return "question" if is_question(u.text, u) or not said else "edit"
        return "edit" if detect_training_intent(text) or (said and len(u.slots) >= 2 and not is_question(u.text, u)) else "question"

    def skip(self) -> None:
        """A message that was not an edit (a question): it still counts as a turn of the conversation."""
        if self.active:
            self.turns += 1

    def update(self, text: str, understood: Understanding | None = None, origin: str | None = None) -> dict:
        """Apply one turn (a reset at its start clears the draft first) and return the new result."""
        u = understood or understand(text)
        if u.reset:
            self.reset()
        if origin:
            self.origin = origin
        previous = self.result
        self.turns += 1
        turn = self.turns
        for s in u.slots:
            if s.field in u.implied and s.field in self.slots:
                continue  # "set lora alpha to 64" does not turn a QLoRA draft into LoRA
            self.slots[s.field] = s
            self.turn_of[s.field] = turn
        given = {s.field for s in u.slots if s.field not in u.implied}
        # A later turn that sets a field settles what was unreadable or contradictory about it.
        self.unread = {k: v for k, v in self.unread.items() if v[1] not in given}
        for piece in u.unread:
            self.unread[piece] = (turn, u.unread_fields.get(piece, ""))
        self.conflicts = {k: v for k, v in self.conflicts.items() if k not in given}
        for c in u.conflicts:
            self.conflicts[c["field"]] = (turn, c)
        mentioned = _exclusive(u.methods_mentioned)
        if len(mentioned) > 1:
            self.methods_conflict = mentioned
        elif "method.type" in given:
            self.methods_conflict = []
        self.openai_style = self.openai_style or u.openai_style
        self.result = build(self, lang=detect_lang(text), previous=previous, said_anything=bool(
            u.slots or u.unread or u.methods_mentioned or u.openai_style))
        return self.result


def _exclusive(methods: list[str]) -> list[str]:
    out = [m for m in dict.fromkeys(methods)]
    if "qlora" in out and "lora" in out:
        out.remove("lora")
    return out


# ---------------------------------------------------------------- building the result

METHOD_NAMES = {"lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tuning", "freeze": "freeze tuning"}
METHOD_NAMES_ZH = {"lora": "LoRA", "qlora": "QLoRA", "full": "全量微调", "freeze": "冻结微调"}


def _finding(rule_id: str, severity: str, field_name: str, message: str, source: str = "request", heading: str = "") -> dict:
    return {"rule_id": rule_id, "severity": severity, "field": field_name, "message": message, "source": source, "heading": heading}


def _request_findings(draft: Draft, lang: str) -> tuple[list[dict], list[dict]]:
    errors, warnings = [], []
    if draft.methods_conflict:
        m = draft.methods_conflict
        if lang == "zh":
            msg = f"请求中同时提到了 {'、'.join(METHOD_NAMES_ZH[x] for x in m)}，它们互相排斥：你想用哪一种？请只保留一种方法再试。"
        else:
            msg = (f"The request asks for both {' and '.join(METHOD_NAMES[x] for x in m)}, which exclude each other: which one do "
                   "you want? Name only one method and try again.")
        errors.append(_finding("request.conflicting-methods", "error", "method.type", msg,
                               "en/qlora.md" if "qlora" in m else "en/lora.md", "Choosing a method"))
    for name, (_, c) in draft.conflicts.items():
        values = ", ".join(f"{v!r} ({t!r})" for v, t in zip(c["values"], c["texts"]))
        if lang == "zh":
            msg = f"{name} 在同一条消息里给了不同的值：{values}。暂用最后一个，请说明要哪一个。"
        else:
            msg = f"{name} is given more than once with different values: {values}. The last one is used for now; which one do you mean?"
        errors.append(_finding("request.conflicting-values", "error", name, msg))
    for piece, (_, about) in draft.unread.items():
        msg = (f"无法读取：{piece!r}；请换一种写法（例如 \"学习率 5e-5\"）。" if lang == "zh"
               else f"could not read: {piece!r}; say it again another way (for example \"learning rate 5e-5\").")
        warnings.append(_finding("request.unread", "warning", about, msg))
    return errors, warnings


def build(draft: Draft, lang: str = "en", previous: dict | None = None, said_anything: bool = True) -> dict:
    """The whole result for the draft as it stands."""
    from assistant.fit import fit
    from assistant.plan import plan
    from trainer.planning.config_io import parse_config_lenient
    from trainer.planning.findings import check_config

    values = {name: s.value for name, s in draft.slots.items()}
    planned = plan(values, openai_style=draft.openai_style)
    target = planned.target
    data = planned.data
    sized = _with_model(data, planned.proxy_model)  # "a 3B model": sized with a catalogue model of that size
    cfg, _ = parse_config_lenient(sized)
    pinned = set(planned.user_fields)
    floor = planned.facts.p95_tokens if (planned.facts and planned.facts.p95_tokens) else 256
    fitted = fit(cfg, target.env, pinned, length_floor=max(64, floor)) if cfg is not None else None
    if fitted is not None and fitted.changes:
        for change in fitted.changes:
            section, key = change["field"].split(".")
            sized.setdefault(section, {})[key] = change["to"]
            data.setdefault(section, {})[key] = change["to"]
    checked = check_config(sized, origin="request", env=target.env, lang=lang)
    report = checked.to_dict()
    errors, warnings = _request_findings(draft, lang)
    warnings += planned.notes
    if fitted is not None:
        warnings += _fit_findings(fitted, target, lang)
    validation = {"errors": errors + report["errors"], "warnings": warnings + report["warnings"]}
    final = checked.config
    out_config = final.to_dict() if final is not None else data
    if planned.proxy_model:
        out_config["model"]["base_model"] = ""
    memory = _memory(final, target.env)
    if planned.proxy_model:
        memory.setdefault("notes", []).insert(0, f"no model named: sized as {planned.proxy_model}, a model of the size you gave")
    result = {
        "config": out_config,
        "validation": validation,
        "memory_estimate": memory,
        "explanations": _explanations(final, draft, planned, fitted),
        "understood": [dict(s.to_dict(), turn=draft.turn_of[s.field]) for s in sorted(
            draft.slots.values(), key=lambda s: (draft.turn_of[s.field], s.span[0]))],
        "unread": list(draft.unread),
        "missing": planned.missing,
        "target": target.to_dict(),
        "fit": fitted.to_dict() if fitted is not None else {"fits": None},
        "this_machine": _this_machine(final, target, pinned) if final is not None else None,
    }
    result["changes"] = diff_configs(previous["config"] if previous else None, out_config)
    result["reply"] = reply_text(result, lang, first=previous is None, said_anything=said_anything)
    return result


def _with_model(data: dict, proxy: str | None) -> dict:
    import copy

    out = copy.deepcopy(data)
    if proxy:
        out.setdefault("model", {})["base_model"] = proxy
    return out


def _memory(cfg, env) -> dict:
    from trainer.planning.memory import EstimateError, estimate

    if cfg is None:
        return {"total_gb": None, "breakdown": {}, "device_memory_gb": None, "fits": None, "max_batch_size": None}
    try:
        return estimate(cfg, env=env).to_dict()
    except (EstimateError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return {"total_gb": None, "breakdown": {}, "device_memory_gb": cfg.hardware.device_memory_gb,
                "fits": None, "max_batch_size": None, "error": str(exc)}


def _fit_findings(fitted, target, lang: str) -> list[dict]:
    out = []
    if any(c["field"] == "method.type" for c in fitted.changes):
        msg = ("LoRA 放不下，已改用 QLoRA（4-bit 基座，需要 CUDA）；想保持 LoRA 请明确说明。" if lang == "zh" else
               f"LoRA does not fit {target.label}, so the plan switched to QLoRA (4-bit base, CUDA only); say \"use LoRA\" to keep LoRA.")
        out.append(_finding("plan.switched-to-qlora", "warning", "method.type", msg, "en/qlora.md", "What QLoRA does"))
    if fitted.tight:
        out.append(_finding("plan.tight-fit", "warning", "training.batch_size",
                            f"The plan fits {target.label} only without the {int(100 * 0.1)}% safety margin: "
                            f"{fitted.total_gb:g} of {fitted.memory_gb:g} GB.", "en/memory.md", "When it does not fit"))
    if fitted.fits is False:
        msg = f"Nothing with your settings fits {target.label}; what would: " + "; ".join(fitted.suggestions) + "."
        out.append(_finding("plan.does-not-fit", "warning", "training.batch_size", msg, "en/memory.md", "When it does not fit"))
    return out


def _this_machine(cfg, target, pinned: set[str]) -> dict:
    """What this machine could run: the same config, judged and fitted on this machine."""
    from assistant.fit import fit
    from assistant.plan import this_machine

    here = this_machine()
    if target.is_machine:
        return {"label": here.label, "same_as_target": True}
    probe = cfg.model_copy(deep=True)
    probe.hardware.gpu = None
    probe.hardware.device_memory_gb = None
    probe.training.device = "auto"
    notes = []
    if not here.env.has_cuda:
        if probe.method.type == "qlora":
            probe.method.type = "lora"
            notes.append("QLoRA needs CUDA, which this machine lacks: judged as LoRA")
        if probe.optimizer.type in ("adamw_8bit", "paged_adamw_8bit", "lion", "lion_8bit"):
            probe.optimizer.type = "adamw"
            notes.append(f"{cfg.optimizer.type} needs CUDA: judged with AdamW")
    fitted = fit(probe, here.env, pinned - {"method.type", "optimizer.type", "training.device"})
    out = {"label": here.label, "same_as_target": False, "fits": fitted.fits, "total_gb": fitted.total_gb,
           "memory_gb": fitted.memory_gb, "notes": notes, "changes": fitted.changes}
    if fitted.fits:
        t = fitted.config.training
        out["message"] = (f"{here.label} can run it as {fitted.config.method.type} at batch {t.batch_size} x "
                          f"{t.gradient_accumulation_steps}, about {fitted.total_gb:g} GB")
    elif fitted.fits is False:
        out["message"] = f"{here.label} cannot run it: about {fitted.total_gb:g} GB needed, {fitted.memory_gb:g} GB there"
    else:
        out["message"] = f"{here.label}: no estimate ({fitted.error or 'memory unknown'})"
    if notes:
        out["message"] += " (" + "; ".join(notes) + ")"
    return out


# ---------------------------------------------------------------- explanations

def _explanations(cfg, draft: Draft, planned, fitted) -> list[dict]:
    from trainer.planning.presets import explain

    if cfg is None:
        return []
    changed = {c["field"]: c for c in (fitted.changes if fitted else [])}
    method = cfg.method.type
    out, seen = [], set()

    def entry(name: str, value, reason: str, source: str) -> None:
        seen.add(name)
        out.append({"field": name, "value": value, "reason": reason, "source": source})

    model = draft.slots.get("model.base_model")
    if model is not None:
        note = f" {model.note[0].upper()}{model.note[1:]}." if model.note else ""
        entry("model.base_model", model.value, f'{draft.origin}: "{model.text}".{note}', "request")
    elif "model.base_model" in planned.reasons:
        reason, source = planned.reasons["model.base_model"]
        entry("model.base_model", "" if planned.proxy_model else cfg.model.base_model, reason, source)
    for item in explain(cfg, n_examples=planned.n_examples):
        name = item["field"]
        if name in seen:
            continue
        slot = draft.slots.get(name)
        if slot is not None:
            entry(name, item["value"], f'{draft.origin}: "{slot.text}". {item["reason"]}', "request")
        elif name in changed:
            c = changed[name]
            entry(name, item["value"], f"{c['from']} -> {c['to']} {c['reason']} {item['reason']}", c["source"])
        elif name in planned.reasons:
            reason, source = planned.reasons[name]
            entry(name, item["value"], reason, source)
        else:
            entry(name, item["value"], f"default of the {method} preset. {item['reason']}", item.get("source", ""))
    flat = _flatten(cfg.to_dict())
    for name, slot in draft.slots.items():
        if name in seen:
            continue
        value = flat.get(name, slot.value)
        entry(name, value, f'{draft.origin}: "{slot.text}".' + (f" {slot.note}." if slot.note else ""), "request")
    for name, c in changed.items():
        if name not in seen:
            entry(name, c["to"], f"{c['from']} -> {c['to']} {c['reason']}", c["source"])
    for name, (reason, source) in planned.reasons.items():
        if name not in seen:
            entry(name, flat.get(name), reason, source)
    return out


# ---------------------------------------------------------------- diff, reply

def _flatten(config: dict) -> dict:
    out = {}
    for section, keys in (config or {}).items():
        if isinstance(keys, dict):
            for key, value in keys.items():
                out[f"{section}.{key}"] = value
    return out


def diff_configs(before: dict | None, after: dict) -> list[dict]:
    """Fields whose value differs between two config dicts ({"field", "from", "to"}); all of `after` when `before` is None."""
    if before is None:
        return []
    a, b = _flatten(before), _flatten(after)
    return [{"field": k, "from": a.get(k), "to": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


MISSING_QUESTIONS = {
    "dataset.path": ("the dataset: which file holds the training examples (JSONL, JSON or CSV)?",
                     "数据集：训练数据在哪个文件里（JSONL、JSON 或 CSV）？"),
    "model.base_model": ("the model: you gave only a size; which model (a hub id or a local folder)?",
                         "模型：你只给了大小，具体是哪个模型（hub id 或本地目录）？"),
}


def _show(value) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e6:
        return str(int(value))  # "3 → 5" epochs, not "3.0 → 5.0"
    return "(unset)" if value is None else str(value)


def reply_text(result: dict, lang: str, first: bool, said_anything: bool = True) -> str:
    """A few lines: what was planned or changed, and what is still missing or unread."""
    zh = lang == "zh"
    lines = []
    if not said_anything and first:
        return ("我没看出这是一个训练请求。请告诉我要微调的模型和数据集，例如“用 data.jsonl 微调 gemma-3-270m”。" if zh else
                "I could not find a training request in that. Tell me the model and the dataset, for example "
                "\"fine-tune gemma-3-270m on data.jsonl\".")
    cfg = result["config"]
    fit = result.get("fit") or {}
    model = cfg.get("model", {}).get("base_model") or ("（未指定）" if zh else "(no model named)")
    method = cfg.get("method", {}).get("type")
    target = result["target"]["label"]
    if fit.get("fits") is True:
        state = (f"可以放下：约 {fit['total_gb']:g} / {fit['memory_gb']:g} GB" if zh
                 else f"fits: about {fit['total_gb']:g} of {fit['memory_gb']:g} GB")
    elif fit.get("fits") is False:
        state = (f"放不下：约需 {fit['total_gb']:g} GB，只有 {fit['memory_gb']:g} GB" if zh
                 else f"does not fit: about {fit['total_gb']:g} GB needed, {fit['memory_gb']:g} GB there")
    else:
        state = "显存未知" if zh else "memory not estimated"
    lines.append(f"{'计划' if zh else 'Plan'}: {method} · {model} · {target} — {state}.")
    changes = result.get("changes") or []
    if changes and not first:
        shown = "; ".join(f"{c['field']}: {_show(c['from'])} → {_show(c['to'])}" for c in changes[:12])
        lines.append(("改动：" if zh else "Changed: ") + shown)
    elif not first:
        lines.append("没有字段变化。" if zh else "Nothing changed.")
    notes = [s["note"] for s in result.get("understood", []) if s.get("note")]
    for note in notes:
        lines.append(("注意：" if zh else "Note: ") + note + ".")
    if result.get("unread"):
        lines.append(("无法读取：" if zh else "Could not read: ") + ", ".join(repr(u) for u in result["unread"]))
    errors = result["validation"]["errors"]
    if errors:
        lines.append(("需要修正：" if zh else "To fix: ") + " | ".join(e["message"] for e in errors[:3]))
    missing = result.get("missing") or []
    if missing:
        asks = [MISSING_QUESTIONS[m][1 if zh else 0] for m in missing if m in MISSING_QUESTIONS]
        lines.append(("还缺：" if zh else "Still missing: ") + " ".join(asks))
    here = result.get("this_machine") or {}
    if here.get("message"):
        lines.append(("本机：" if zh else "This machine: ") + here["message"] + ".")
    return "\n".join(lines)


__all__ = ["CONFIG_KEYS", "Draft", "build", "diff_configs", "reply_text"]
