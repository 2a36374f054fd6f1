"""Adapters on a shared base with the real backend: switching gives the same tokens as a dedicated
PEFT model, base requests see no adapter, and two adapters on one base stay apart."""

from __future__ import annotations

import pytest
import torch

from trainer.models import generation
from trainer.models import registry as models
from trainer.server.model_pool import ModelPool, TransformersBackend

pytestmark = pytest.mark.integration


def make_adapter(base_dir, out_dir, seed: int):
    """A LoRA adapter whose B matrices are random, so it visibly changes the model's output."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(str(out_dir))
    return out_dir


def reference_tokens(base_dir, adapter_dir, prompt_ids, n: int) -> list[int]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    with torch.inference_mode():
        out = model.generate(input_ids=prompt_ids, attention_mask=torch.ones_like(prompt_ids), max_new_tokens=n,
                             min_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0, prompt_ids.shape[1]:].tolist()


@pytest.fixture
def adapters(tiny_model_dir, tmp_path):
    models.register_local("tiny", tiny_model_dir)
    first = make_adapter(tiny_model_dir, tmp_path / "adapter-1", seed=1)
    second = make_adapter(tiny_model_dir, tmp_path / "adapter-2", seed=2)
    models.register_finetuned("ft:tiny:one:ftjob-1", "tiny", first)
    models.register_finetuned("ft:tiny:two:ftjob-2", "tiny", second)
    return first, second


def pool_reply(handle, n: int) -> tuple[str, torch.Tensor]:
    """Greedy reply through the server's generation path, and the prompt ids it was given."""
    prompt = generation.chat_prompt(handle.tokenizer, [{"role": "user", "content": "What is LoRA?"}])
    params = generation.SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)
    prompt_ids = handle.tokenizer(prompt.text, return_tensors="pt", add_special_tokens=prompt.add_special_tokens)["input_ids"]
    return generation.generate_batch(handle, [prompt], params, strip=True)[0].text, prompt_ids


def test_adapters_share_one_base_and_match_dedicated_peft_models(tiny_model_dir, adapters):
    pool = ModelPool(budget_bytes=10**9, backend=TransformersBackend(device="cpu", dtype="float32"))
    n = 12
    base = pool.acquire("tiny")
    one = pool.acquire("ft:tiny:one:ftjob-1")
    two = pool.acquire("ft:tiny:two:ftjob-2")
    assert base.model is one.model is two.model  # one copy of the base weights

    # interleave requests so every switch direction is exercised
    got_one, prompt_ids = pool_reply(one, n)
    got_base, _ = pool_reply(base, n)
    got_two, _ = pool_reply(two, n)
    again_one, _ = pool_reply(one, n)

    tok = base.tokenizer
    decode = lambda ids: tok.decode(ids, skip_special_tokens=True).strip()  # noqa: E731
    want_base = decode(reference_tokens(tiny_model_dir, None, prompt_ids, n))
    want_one = decode(reference_tokens(tiny_model_dir, adapters[0], prompt_ids, n))
    want_two = decode(reference_tokens(tiny_model_dir, adapters[1], prompt_ids, n))
    assert len({want_base, want_one, want_two}) == 3, "the test adapters should change the output"
    assert got_base == want_base
    assert got_one == want_one == again_one
    assert got_two == want_two

    # dropping one adapter leaves the other and the base intact
    pool.drop("ft:tiny:one:ftjob-1")
    assert pool_reply(pool.acquire("ft:tiny:two:ftjob-2"), n)[0] == want_two
    assert pool_reply(pool.acquire("tiny"), n)[0] == want_base


def test_one_tokenizer_serves_concurrent_requests(tiny_model_dir):
    """Counting prompt tokens (event loop) while batches are encoded and decoded (worker threads)
    used to make the shared fast tokenizer panic with "Already borrowed"."""
    import threading

    pool = ModelPool(budget_bytes=10**9, backend=TransformersBackend(device="cpu", dtype="float32"))
    handle = pool.acquire(str(tiny_model_dir))
    params = generation.SamplingParams(max_tokens=2, temperature=0)
    failures: list[BaseException] = []

    def count() -> None:
        try:
            for i in range(200):
                generation.chat_prompt(handle.tokenizer, [{"role": "user", "content": "Hi " * (i % 7)}])
        except BaseException as exc:
            failures.append(exc)

    def generate() -> None:
        try:
            for i in range(10):
                prompts = [generation.raw_prompt(handle.tokenizer, "LoRA " * n) for n in (1, 3, 5 + i)]
                generation.generate_batch(handle, prompts, params)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=f) for f in (count, count, generate, generate)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
