"""The same recipe under `accelerate launch`: 2-process CPU data parallel on the tiny model.

`accelerate launch --cpu --num_processes 2` starts several CPU processes only through mpirun (it
falls back to ONE process without an MPI host file), so the test uses accelerate's torchrun-based
launcher (`--multi_gpu`); on a machine without GPUs the Trainer's `use_cpu` makes that a
gloo CPU process group. The job card's world_size proves both processes trained together.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import chat_rows, free_port, write_jsonl

pytestmark = pytest.mark.integration


def test_accelerate_two_cpu_processes(tmp_path, tiny_model_dir):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if accelerate is None:
        pytest.fail("accelerate CLI is missing from the environment")
    rows = chat_rows(8, question="Q{i} hello", answer="yes ", repeat=4)
    write_jsonl(tmp_path / "d.jsonl", rows)
    (tmp_path / "cfg.yaml").write_text(
        f"model: {{base_model: '{tiny_model_dir}', dtype: float32}}\n"
        "dataset: {path: d.jsonl, max_seq_length: 48}\n"
        "training: {max_steps: 2, batch_size: 2}\n"
        "saving: {save_every_n_steps: 1}\n", encoding="utf-8")
    out = tmp_path / "out"
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           "-m", "trainer.run_config", str(tmp_path / "cfg.yaml"), "--output-dir", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((out / "job_card.json").read_text())
    assert card["hardware"]["world_size"] == 2
    assert card["steps"]["completed"] == 2 and card["loss"]["curve"]
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert (out / "checkpoint-2" / "rng_state_1.pth").exists()  # both ranks saved their RNG state
    # The main process alone finished the run: one ft: model, registered on the adapter.
    from trainer.models import registry as models

    finetuned = [e for e in models.list_models() if e.kind == "finetuned" and ":ckpt-step-" not in e.id]
    assert len(finetuned) == 1 and finetuned[0].extra["output_dir"] == str(out)
    assert f"model id: {finetuned[0].id}" in proc.stderr
