"""The assistant: grounded answers with citations (`answer`, `engines`, `citations`, `condense`) and
turning a training request into a validated config (`slots` reads the values, `config_from_text`
plans and validates). Sits above knowledge and trainer.planning; the CLI and the UI call it."""
