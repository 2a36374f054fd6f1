"""The config card shown in the chat when a message asks for training.

It starts from `config_from_text(...)`'s config, lets the person edit the fields people change
most, and on every edit re-validates with the library (`findings.check_config(...,
for_launch=True)`, `memory.estimate`), so what the card shows is exactly what `tunepilot config
validate` would say. Launch is disabled, with the reason, while validation has errors.
"""

from __future__ import annotations

import copy

import streamlit as st

from tunepilot.ui.widgets.errors import shown_as_error
from tunepilot.ui.widgets.i18n import current_lang, t
from tunepilot.ui.widgets.memory_bar import render_memory_bar

METHODS = ["lora", "qlora", "full", "freeze"]


def _edit_fields(config: dict, key: str) -> dict:
    """Widgets for the commonly edited fields; returns a copy of `config` with the edits applied."""
    data = copy.deepcopy(config)
    model, method = data.setdefault("model", {}), data.setdefault("method", {})
    dataset, optimizer = data.setdefault("dataset", {}), data.setdefault("optimizer", {})
    training = data.setdefault("training", {})

    left, middle, right = st.columns(3)
    with left:
        model["base_model"] = st.text_input(t("card.base_model"), value=str(model.get("base_model", "")), key=f"{key}.base_model")
        current = method.get("type", "lora")
        method["type"] = st.selectbox(t("card.method"), METHODS, index=METHODS.index(current) if current in METHODS else 0, key=f"{key}.method")
        dataset["path"] = st.text_input(t("card.dataset_path"), value=str(dataset.get("path", "")), key=f"{key}.dataset_path",
                                        help=t("card.dataset_path_help"))
    with middle:
        training["epochs"] = st.number_input(t("card.epochs"), value=float(training.get("epochs", 3)), step=1.0, key=f"{key}.epochs")
        max_steps = st.number_input(t("card.max_steps"), value=int(training.get("max_steps") or 0), step=1, min_value=0,
                                    key=f"{key}.max_steps", help=t("card.max_steps_help"))
        # 0 means "not set": TOML has no null, and the schema takes None for "run by epochs".
        if max_steps:
            training["max_steps"] = int(max_steps)
        else:
            training.pop("max_steps", None)
        optimizer["learning_rate"] = st.number_input(t("card.learning_rate"), value=float(optimizer.get("learning_rate", 2e-4)),
                                                     step=1e-5, format="%.2e", key=f"{key}.learning_rate")
        training["batch_size"] = int(st.number_input(t("card.batch_size"), value=int(training.get("batch_size", 4)), step=1, key=f"{key}.batch_size"))
    with right:
        method["lora_r"] = int(st.number_input(t("card.lora_r"), value=int(method.get("lora_r", 16)), step=1, key=f"{key}.lora_r"))
        method["lora_alpha"] = int(st.number_input(t("card.lora_alpha"), value=int(method.get("lora_alpha", 32)), step=1, key=f"{key}.lora_alpha"))
        dataset["max_seq_length"] = int(st.number_input(t("card.max_length"), value=int(dataset.get("max_seq_length", 1024)), step=64,
                                                        key=f"{key}.max_length"))
    return data


# Findings about the request itself (two methods that exclude each other, a value the schema
# rejected, an LLM extraction that fell back), which re-validating the edited config cannot see.
REQUEST_RULES = ("request.", "config.schema")


def with_request_findings(report: dict, original: dict) -> dict:
    """The edited config's validation plus the original request's own findings (errors still block Launch)."""
    merged = {"errors": list(report.get("errors", [])), "warnings": list(report.get("warnings", []))}
    for level in ("errors", "warnings"):
        for finding in original.get(level, []):
            if str(finding.get("rule_id", "")).startswith(REQUEST_RULES) and finding not in merged[level]:
                merged[level].insert(0, finding)
    return merged


def _render_findings(report: dict) -> None:
    """Each finding with its rule id and the doc passage it comes from."""
    for level, show in (("errors", st.error), ("warnings", st.warning)):
        for finding in report.get(level, []):
            where = f" — {finding['source']}" if finding.get("source") else ""
            if finding.get("heading"):
                where += f" › {finding['heading']}"
            field = f" `{finding['field']}`" if finding.get("field") else ""
            show(f"**{finding['rule_id']}**{field}: {finding['message']}{where}")
    if not report.get("errors") and not report.get("warnings"):
        st.success(t("card.valid"), icon="✅")


def _launch(cfg, report: dict, key: str) -> None:
    from trainer import jobs

    errors = report.get("errors", [])
    reason = t("card.launch_blocked", reason=errors[0]["message"], n=len(errors)) if errors else None
    clicked = st.button(t("card.launch"), type="primary", disabled=bool(errors), help=reason, key=f"{key}.launch")
    if reason:
        st.caption(f"🔒 {reason}")
    if clicked:
        with shown_as_error():
            job = jobs.create_job(cfg)
            st.session_state[f"{key}.job_id"] = job["id"]
            st.session_state["jobs.selected"] = job["id"]
    job_id = st.session_state.get(f"{key}.job_id")
    if job_id:
        st.success(t("card.launched", id=job_id), icon="🚀")
        st.page_link("pages/jobs.py", label=t("card.open_jobs"), icon="🏋️")


def render_config_card(result: dict, key: str) -> None:
    """The whole card for one `config_from_text` result; `key` keeps its widgets apart from other cards."""
    from trainer.planning import memory
    from trainer.planning.config_io import dumps_config
    from trainer.planning.findings import check_config

    with st.container(border=True):
        st.markdown(f"#### 🧾 {t('card.title')}")
        edited = _edit_fields(result.get("config", {}), key)
        # Schema problems and rule findings in one pass, as `tunepilot config validate --for-launch` reports them.
        checked = check_config(edited, for_launch=True, lang=current_lang())
        if checked.problems:
            for problem in checked.problems:
                st.error(f"`{problem.get('loc', '')}`: {problem.get('message', '')}")
            st.button(t("card.launch"), disabled=True, key=f"{key}.launch", help=t("card.fix_fields"))
            st.caption(f"🔒 {t('card.fix_fields')}")
            return

        cfg = checked.config
        report = with_request_findings(checked.to_dict(), result.get("validation") or {})
        _render_findings(report)
        st.markdown(f"**{t('card.memory')}**")
        # A model the estimator cannot size (a name outside the catalogue) is one line, not a traceback.
        with shown_as_error():
            render_memory_bar(memory.estimate(cfg).to_dict())

        explanations = result.get("explanations") or []
        if explanations:
            with st.expander(t("card.why")):
                for item in explanations:
                    source = f" ({item['source']})" if item.get("source") else ""
                    st.markdown(f"- `{item['field']}` = `{item['value']}`: {item['reason']}{source}")

        toml_col, yaml_col, _ = st.columns([1, 1, 3])
        toml_col.download_button(t("card.download_toml"), dumps_config(cfg, "toml"), file_name="train.toml",
                                 mime="application/toml", key=f"{key}.toml", on_click="ignore")
        yaml_col.download_button(t("card.download_yaml"), dumps_config(cfg, "yaml"), file_name="train.yaml",
                                 mime="application/yaml", key=f"{key}.yaml", on_click="ignore")
        _launch(cfg, report, key)
