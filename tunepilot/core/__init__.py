"""The shared core every other layer builds on; it imports no other first-party package.

- `errors`: the one `UserError` base (a code and the offending field) every part's user-facing errors derive from.
- `settings`: the `TUNEPILOT_*` environment, read and validated in one place.
- `workspace`: where state lives (`$TUNEPILOT_HOME`).
- `text_encoding` / `atomic`: the one text-decoding policy and the one atomic-write helper.
- `language`: language detection and word segmentation (jieba) for zh/en.
- `tables`: JSON / JSONL / CSV / TSV row reading.
"""
