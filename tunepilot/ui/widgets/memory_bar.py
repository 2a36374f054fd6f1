"""The memory bar: estimated training memory against the device's memory, with the breakdown."""

from __future__ import annotations

import streamlit as st

from tunepilot.ui.widgets.i18n import t


def render_memory_bar(estimate: dict) -> None:
    """Draw `trainer.planning.memory.estimate(cfg).to_dict()` as a bar (estimate / device) and a breakdown line."""
    total = float(estimate.get("total_gb") or 0.0)
    device = estimate.get("device_memory_gb")
    if device:
        share = total / float(device)
        st.progress(min(share, 1.0), text=t("memory.bar", total=f"{total:.2f}", device=f"{float(device):.1f}", pct=f"{share:.0%}"))
    else:
        st.markdown(t("memory.total_only", total=f"{total:.2f}"))
    fits = estimate.get("fits")
    if fits is False:
        st.warning(t("memory.does_not_fit"), icon="🚫")
    breakdown = estimate.get("breakdown") or {}
    if breakdown:
        parts = " · ".join(f"{name} {float(gb):.2f} GB" for name, gb in breakdown.items())
        st.caption(t("memory.breakdown", parts=parts))
    if estimate.get("max_batch_size"):
        st.caption(t("memory.max_batch", n=estimate["max_batch_size"]))
