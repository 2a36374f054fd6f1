"""The Streamlit chat with a draft config (issue 13): an edit typed under the card updates that card
in place and the reply says what changed; "start over" clears the draft."""

from __future__ import annotations

import pytest

from tests.support import chat_rows, write_jsonl
from tests.test_ui_pages import start_app, texts

pytestmark = pytest.mark.integration


def test_edits_update_the_card_in_place(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", chat_rows(8))
    at = start_app("en")
    at.chat_input[0].set_value(f"Fine-tune gemma-3-270m on {data} with LoRA for 1 epoch").run()
    assert not at.exception, at.exception
    assert at.number_input(key="card1.epochs").value == 1
    at.chat_input[0].set_value("make it 5 epochs and rank 32").run()
    assert not at.exception, at.exception
    # The same card (key card1) shows the edit; no second card appeared.
    assert at.number_input(key="card1.epochs").value == 5
    assert at.number_input(key="card1.lora_r").value == 32
    assert not [w for w in at.number_input if w.key.startswith("card3.")]
    shown = [str(m.value) for message in at.chat_message for m in message.markdown]
    assert any("training.epochs: 1 → 5" in m for m in shown), shown
    at.chat_input[0].set_value("start over").run()
    assert any("Started over" in m for m in texts(at.markdown))
