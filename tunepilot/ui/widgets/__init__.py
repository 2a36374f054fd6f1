"""Small helpers shared by the Streamlit pages: i18n, widgets (config card, memory bar, citations), caching."""
