"""Streamlit entry point (`tunepilot ui`). Pages stay thin: read widgets, call the library, render."""

from __future__ import annotations

import streamlit as st

from trainer import models, workspace

st.set_page_config(page_title="tunepilot", page_icon="🎛️", layout="wide")
st.title("tunepilot")
st.caption("Fine-tuning copilot: ask -> config -> train -> eval -> compare.")
st.write(f"Workspace: `{workspace.home()}`")
st.subheader("Models")
st.dataframe([{"id": m.id, "kind": m.kind, "path": m.path} for m in models.list_models()], use_container_width=True)
