"""The assistant: grounded answers with citations (`answer`, `engines`, `citations`, `condense`) and
turning a conversation into a validated config that fits the named GPU (`understand` reads the
values, `plan` fills defaults with reasons, `fit` fits the memory, `draft` keeps the conversation's
config, `config_from_text` runs them). Sits above knowledge and trainer.planning; the CLI and the UI call it."""
