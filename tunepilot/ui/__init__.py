"""The Streamlit app: `app.py` (navigation), `pages/` (one file per page), `widgets/` (shared pieces)."""
