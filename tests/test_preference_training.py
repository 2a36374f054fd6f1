"""Preference tuning through the real recipe on the tiny model: DPO / ORPO / SimPO / KTO runs, the job card and
adapter, resume after a crash and after kill -9, KTO's false rows pushed down (never imitated), pairwise evals."""

from __future__ import annotations

import json
import os
import signal
import time

import psutil
import pytest
import torch
from safetensors.torch import load_file

from tests.support import chat_rows, make_cfg
from trainer.training.recipe import train
from tunepilot.core.errors import UserError

pytestmark = pytest.mark.integration

YES, NO = "The answer is yes.", "The answer is no."
PAIRS = [{"prompt": [{"role": "user", "content": f"Question {i}: say yes"}],
          "chosen": [{"role": "assistant", "content": YES}],
          "rejected": [{"role": "assistant", "content": NO}]} for i in range(8)]
# Each prompt twice: the desirable reply labelled true, the undesirable one false (file order alternates).
KTO_ROWS = [{"messages": [{"role": "user", "content": f"Question {i // 2}: say yes"},
                          {"role": "assistant", "content": YES if i % 2 == 0 else NO}], "label": i % 2 == 0}
            for i in range(16)]


def dpo_cfg(tmp_path, model_dir, rows=PAIRS, **overrides):
    return make_cfg(tmp_path, model_dir, rows, data_name="pairs.jsonl", **{"method__stage": "dpo", **overrides})


def test_dpo_run_trains_the_adapter_and_writes_the_job_card(tmp_path, tiny_model_dir):
    events = []
    rows = PAIRS + [{"prompt": "Question 9", "chosen": "same", "rejected": "same"}]
    result = train(dpo_cfg(tmp_path, tiny_model_dir, rows), tmp_path / "out", on_event=events.append)
    assert result.status == "succeeded" and result.global_step == 3 and result.is_adapter
    assert result.trained_tokens > 0 and result.data_stats["kind"] == "preference"
    metrics = [e["data"] for e in events if e["type"] == "metrics" and "loss" in e["data"]]
    assert len(metrics) == 3 and "rewards/accuracies" in metrics[0] and "rewards/margins" in metrics[0]
    assert metrics[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy == reference at the start
    assert any(e["level"] == "warning" and "line 9: chosen and rejected are identical" in e["message"] for e in events)
    adapter = load_file(str(tmp_path / "out" / "adapter" / "adapter_model.safetensors"))
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)
    card = json.loads((tmp_path / "out" / "job_card.json").read_text())
    assert card["config"]["method"]["stage"] == "dpo" and card["config"]["method"]["beta"] == 0.1
    assert card["data"]["train_examples"] == 9 and card["steps"]["completed"] == 3
    assert not (tmp_path / "out" / "README.md").exists()  # TRL's model card is not written; the job card is


@pytest.mark.parametrize("overrides", [
    {"method__stage": "orpo"},
    {"method__pref_loss": "simpo"},
    {"method__pref_loss": "ipo", "method__type": "full"},  # full tuning: a frozen reference copy
])
def test_other_preference_losses_train(tmp_path, tiny_model_dir, overrides):
    result = train(dpo_cfg(tmp_path, tiny_model_dir, training__max_steps=2, **overrides), tmp_path / "out")
    assert result.status == "succeeded" and result.global_step == 2 and result.train_loss is not None
    assert os.path.isdir(result.final_path)


def test_dpo_resumes_after_a_crash_from_the_last_checkpoint(tmp_path, tiny_model_dir):
    cfg = dpo_cfg(tmp_path, tiny_model_dir, training__max_steps=4, training__batch_size=2, saving__save_every_n_steps=2)
    calls = {"n": 0}

    def crash_at_step_3():
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return False

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, tmp_path / "out", should_stop=crash_at_step_3)
    assert (tmp_path / "out" / "checkpoint-2").is_dir() and not (tmp_path / "out" / "adapter").exists()
    events = []
    result = train(cfg, tmp_path / "out", on_event=events.append)
    assert result.resumed_from.endswith("checkpoint-2") and result.status == "succeeded"
    assert [e["data"]["step"] for e in events if e["type"] == "metrics" and "loss" in e["data"]] == [3, 4]


def test_dpo_job_survives_kill_9_and_resumes(tmp_path, tiny_model_dir):
    from trainer import jobs

    steps = 40
    cfg = dpo_cfg(tmp_path, tiny_model_dir, training__max_steps=steps, training__batch_size=1,
                  saving__save_every_n_steps=2)
    job = jobs.create_job(cfg)

    def wait(predicate, timeout=400, poll=0.1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if value := predicate():
                return value
            time.sleep(poll)
        raise AssertionError("timed out")

    def worker():
        return [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
                if "trainer.jobs.worker" in " ".join(p.info["cmdline"] or []) and job["id"] in " ".join(p.info["cmdline"] or [])]

    [pid] = wait(worker)
    wait(lambda: os.path.isdir(job["output_dir"]) and any(n.startswith("checkpoint-") for n in os.listdir(job["output_dir"])))
    os.kill(pid, signal.SIGKILL)
    wait(lambda: jobs.get_job(job["id"])["status"] == "failed")
    jobs.resume_job(job["id"])
    done = jobs.wait_for_job(job["id"], timeout=400)
    assert done["status"] == "succeeded", done
    events = jobs.job_events(job["id"])
    assert any(e["message"].startswith("Resuming from checkpoint-") for e in events)
    assert [e["data"]["step"] for e in events if e["type"] == "metrics" and "loss" in e["data"]][-1] == steps


def test_kto_false_rows_are_pushed_down_never_imitated(tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evals.preference import reply_logps
    from trainer.models.device import Precision
    from trainer.training.methods import apply_method
    from trainer.training.recipe import build_data, build_trainer

    cfg = make_cfg(tmp_path, tiny_model_dir, KTO_ROWS, data_name="kto.jsonl", method__stage="kto",
                   training__epochs=3, optimizer__learning_rate=1e-2)
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    # What the trainer scores, compared with the file: the same labels, line by line, on the same replies.
    data = build_data(cfg, tok)
    model = apply_method(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), cfg)
    trainer, *_ = build_trainer(cfg, model, tok, data, tmp_path / "probe", "cpu", Precision(torch.float32, None),
                                lambda e: None, None)
    ds = trainer.train_dataset
    assert ds["label"] == [row["label"] for row in KTO_ROWS]
    assert [tok.decode(ids) for ids in ds["completion_ids"]] == [r["messages"][1]["content"] + "<end_of_turn>\n" for r in KTO_ROWS]
    batch = trainer.data_collator([ds[i] for i in range(4)])
    assert batch["label"].tolist() == [True, False, True, False]
    assert batch["completion_mask"].sum(dim=1).tolist() == [len(ds[i]["completion_ids"]) for i in range(4)]

    prompts = [[{"role": "user", "content": f"Question {i}: say yes"}] for i in range(8)]

    def logps(m, reply):
        return sum(reply_logps(m, tok, prompts, [[{"role": "assistant", "content": reply}]] * 8)) / 8

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    before_no, before_yes = logps(base, NO), logps(base, YES)
    result = train(cfg, tmp_path / "out")
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), result.final_path)
    after_no, after_yes = logps(tuned, NO), logps(tuned, YES)
    # SFT on these rows would raise log p(NO); KTO lowers it, and the desirable reply pulls ahead.
    assert after_no < before_no
    assert after_yes - after_no > before_yes - before_no + 1.0


def test_wrong_data_kind_and_kto_batch_of_one_are_refused(tmp_path, tiny_model_dir):
    with pytest.raises(UserError, match=r'preference set .* method.stage = "kto" cannot use: set method.stage = "dpo"'):
        train(dpo_cfg(tmp_path, tiny_model_dir, method__stage="kto"), tmp_path / "a")
    with pytest.raises(UserError, match='it is SFT data: use method.stage = "sft"'):
        train(make_cfg(tmp_path, tiny_model_dir, chat_rows(4), method__stage="dpo"), tmp_path / "b")
    with pytest.raises(UserError, match="batch_size of at least 2"):
        train(make_cfg(tmp_path, tiny_model_dir, KTO_ROWS, data_name="k.jsonl", method__stage="kto",
                       training__batch_size=1), tmp_path / "c")


def test_pairwise_eval_reports_base_vs_tuned(tmp_path, tiny_model_dir):
    from evals.runner import run_eval
    from tests.support import write_jsonl

    result = train(dpo_cfg(tmp_path, tiny_model_dir, training__epochs=4, optimizer__learning_rate=1e-2), tmp_path / "out")
    pairs = write_jsonl(tmp_path / "eval_pairs.jsonl", PAIRS)
    report = run_eval({"dataset": str(pairs), "out": str(tmp_path / "eval"),
                       "providers": [{"id": str(tiny_model_dir), "label": "base"}, {"id": result.final_path, "label": "tuned"}]})
    base, tuned = report["models"]["base"], report["models"]["tuned"]
    assert set(base["scores"]) == {"preference_accuracy", "logp_margin"} and base["rows_scored"] == 8
    assert tuned["scores"]["logp_margin"] > base["scores"]["logp_margin"]
    assert tuned["scores"]["preference_accuracy"] == 1.0
    assert tuned["delta"]["logp_margin"] == pytest.approx(tuned["scores"]["logp_margin"] - base["scores"]["logp_margin"])
    assert (tmp_path / "eval" / "summary.json").exists() and (tmp_path / "eval" / "report.html").exists()


def test_backbone_prefix_fix_points_trl_at_the_decoder(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.training.preference import align_backbone_prefix

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    assert model.base_model is model  # transformers 4.57: prefix "language_model", decoder at .model
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    align_backbone_prefix(peft_model)
    assert model.base_model is model.model
    align_backbone_prefix(model)  # idempotent
    assert model.base_model is model.model
