"""The bundled demo: its config parses, its data passes the check, and its eval set asks unseen questions."""

from __future__ import annotations

from trainer.data.check import check_dataset
from trainer.data.formats import read_dataset
from tunepilot.demo import EVAL_FILE, PERSONA_LINE, demo_config


def test_demo_config_and_data_are_valid():
    cfg = demo_config()
    assert cfg.model.base_model == "gemma-3-270m" and cfg.method.type == "lora"
    report = check_dataset(cfg.dataset.path, max_seq_length=cfg.dataset.max_seq_length, eval_path=str(EVAL_FILE))
    assert report.ok and report.n_examples == 60 and not report.duplicates
    assert report.eval["n_examples"] == 15 and report.eval["overlap"] == []
    train = read_dataset(cfg.dataset.path).examples
    identity = [ex for ex in train if ex["messages"][-1]["content"].startswith(PERSONA_LINE)]
    assert len(identity) >= 30  # enough repetitions of the fixed line to learn it
    evals = read_dataset(EVAL_FILE).examples
    assert all(ex["messages"][-1]["content"] == PERSONA_LINE for ex in evals)
