"""Training data: reading every supported format into messages (`formats`), tokenising with
assistant-only loss masks (`sft`), and the per-line dataset check (`check`)."""
