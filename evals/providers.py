"""Providers turn a batch of chat conversations into replies: local models or OpenAI-compatible endpoints.

- Local (`gemma-3-270m`, a folder, an `ft:` id — the adapter on its base, no merge — or a registered
  name) goes through `trainer.models.generation`, so prompts are formatted and stopped at end-of-turn the
  same way as in training samples and `tunepilot chat-model`. A batch is one padded `generate`
  call; if it fails, its rows are retried one at a time so a single bad row does not sink the rest.
- `openai:<model>` talks to any OpenAI-compatible server (OpenAI itself, vLLM, `tunepilot serve`) with
  the `openai` client; rows of a batch are sent concurrently.

A provider never raises for a failed row: the row comes back with `error` set, and the runner
records it and goes on.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from evals.errors import EvalError
from evals.spec import GenerationSpec, ProviderSpec
from evals.tools import reply_text
from tunepilot.core.settings import openai_endpoint

OPENAI_PREFIX = "openai:"


@dataclass
class Generation:
    """One row's reply, or why there is none; latency is seconds spent on this row."""

    text: str | None
    error: str | None
    latency_s: float


class Provider:
    """Interface: `check()` before the run, then `generate()` per batch; `perplexity()` where supported."""

    kind = "base"
    promptlayer_provider = "custom"

    def __init__(self, spec: ProviderSpec):
        self.spec = spec
        self.name = spec.name

    def check(self) -> None:
        """Fail fast, before any generation, on names the user got wrong."""

    def generate(self, messages_batch: list[list[dict]], gen: GenerationSpec,
                 tools: list[dict] | None = None) -> list[Generation]:
        """Replies for a batch; `tools` (OpenAI's shape) are offered to every conversation of the batch."""
        raise NotImplementedError

    def perplexity(self, messages: list[dict], expected: str) -> float:
        raise EvalError(f"{self.name} cannot score perplexity: it needs a local model's token probabilities.")

    @property
    def supports_perplexity(self) -> bool:
        return False


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class LocalProvider(Provider):
    kind = "local"
    promptlayer_provider = "huggingface"

    def __init__(self, spec: ProviderSpec, device: str = "auto"):
        super().__init__(spec)
        self.device = device
        self._loaded = None
        self._load_error: str | None = None

    def check(self) -> None:
        from trainer.models import registry as models

        try:
            models.resolve(self.spec.id, provision=False, progress=False)
        except models.ModelError as exc:
            raise EvalError(str(exc)) from None

    def loaded(self):
        """The cached model; a load failure is remembered so every row reports it instead of retrying."""
        if self._loaded is None and self._load_error is None:
            from trainer.models import generation

            try:
                self._loaded = generation.load(self.spec.id, device=self.device)
            except Exception as exc:  # any load failure becomes row errors; the run goes on
                self._load_error = f"cannot load {self.spec.id}: {_describe(exc)}"
        if self._load_error:
            raise RuntimeError(self._load_error)
        return self._loaded

    def generate(self, messages_batch: list[list[dict]], gen: GenerationSpec,
                 tools: list[dict] | None = None) -> list[Generation]:
        try:
            loaded = self.loaded()
        except RuntimeError as exc:
            return [Generation(None, str(exc), 0.0) for _ in messages_batch]
        start = time.perf_counter()
        try:
            texts = self._call(loaded, messages_batch, gen, tools)
        except Exception as exc:
            if len(messages_batch) == 1:
                return [Generation(None, _describe(exc), time.perf_counter() - start)]
            # Find the bad row(s): retry one at a time.
            return [self.generate([m], gen, tools)[0] for m in messages_batch]
        per_row = (time.perf_counter() - start) / len(messages_batch)  # amortised over the batch
        return [Generation(t, None, per_row) for t in texts]

    def _call(self, loaded, messages_batch, gen: GenerationSpec, tools: list[dict] | None = None) -> list[str]:
        from trainer.models import generation

        # With tools the prompt is rendered as a tool-calling fine-tune was trained; calls stay in the text.
        return generation.generate(loaded, messages_batch, max_new_tokens=gen.max_new_tokens,
                                   temperature=gen.temperature, top_p=gen.top_p, stop=gen.stop or None, tools=tools)

    @property
    def supports_perplexity(self) -> bool:
        return True

    def perplexity(self, messages: list[dict], expected: str) -> float:
        """exp(mean token loss) of the expected reply, teacher-forced after the prompt (the reply's tokens only)."""
        import torch

        from trainer.models import generation
        from trainer.models.chat_format import has_chat_template, render_prompt

        loaded = self.loaded()
        tok = loaded.tokenizer
        prompt = render_prompt(tok, messages)
        full = render_prompt(tok, messages + [{"role": "assistant", "content": expected}], add_generation_prompt=False)
        if not full.startswith(prompt):  # templates that re-render earlier turns differently
            full = prompt + expected
        add_special = not has_chat_template(tok)
        # Locked tokenization: the UI may be chatting with this same loaded model meanwhile.
        prompt_ids = generation.token_ids(tok, prompt, add_special)
        full_ids = generation.token_ids(tok, full, add_special)
        if len(full_ids) <= len(prompt_ids):
            raise EvalError("the expected answer is empty, so it has no perplexity")
        input_ids = torch.tensor([full_ids], device=loaded.model.device)
        labels = input_ids.clone()
        labels[0, : len(prompt_ids)] = -100
        with loaded.lock, torch.inference_mode():
            loss = loaded.model(input_ids=input_ids, labels=labels).loss
        return float(math.exp(min(float(loss), 50.0)))


class OpenAIProvider(Provider):
    kind = "openai"
    promptlayer_provider = "openai"

    def __init__(self, spec: ProviderSpec):
        super().__init__(spec)
        self.model = spec.id[len(OPENAI_PREFIX):]
        # The model is the id's; the endpoint and timeout follow the one precedence (config > env > default).
        # timeout_s counts as given only when the config wrote it, so TUNEPILOT_OPENAI_TIMEOUT applies otherwise.
        endpoint = openai_endpoint(base_url=spec.base_url, api_key=spec.api_key,
                                   timeout=spec.timeout_s if "timeout_s" in spec.model_fields_set else None)
        self.base_url = endpoint.base_url
        self.api_key = endpoint.api_key
        self.timeout_s = endpoint.timeout
        self._client = None
        # Set once a whole batch failed to connect: later rows fail at once instead of each timing out.
        self.unreachable: str | None = None

    def check(self) -> None:
        if not self.model:
            raise EvalError(f"{self.spec.id!r} names no model; write openai:<model>, e.g. openai:gpt-4o-mini.")
        if not self.base_url and not self.api_key:
            raise EvalError(f"{self.spec.id} needs an endpoint: set base_url for it in the eval config or "
                            "TUNEPILOT_OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1 for `tunepilot serve`).")

    def client(self):
        if self._client is None:
            from openai import OpenAI

            # Local OpenAI-compatible servers ignore the key, but the client insists on one.
            self._client = OpenAI(base_url=self.base_url, api_key=self.api_key or "not-needed",
                                  timeout=self.timeout_s, max_retries=0)
        return self._client

    def generate(self, messages_batch: list[list[dict]], gen: GenerationSpec,
                 tools: list[dict] | None = None) -> list[Generation]:
        if self.unreachable:
            return [Generation(None, self.unreachable, 0.0) for _ in messages_batch]
        workers = max(1, min(gen.batch_size, len(messages_batch), 8))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda m: self._one(m, gen, tools), messages_batch))
        if results and all(r.error and r.error.startswith("cannot reach") for r in results):
            self.unreachable = results[0].error
        return results

    def _one(self, messages: list[dict], gen: GenerationSpec, tools: list[dict] | None = None) -> Generation:
        import openai

        start = time.perf_counter()
        kwargs = dict(model=self.model, messages=messages, max_tokens=gen.max_new_tokens,
                      temperature=gen.temperature, top_p=gen.top_p)
        if gen.stop:
            kwargs["stop"] = gen.stop
        if tools:
            kwargs["tools"] = tools
        try:
            response = self.client().chat.completions.create(**kwargs)
            message = response.choices[0].message
            # Calls come back as tool_calls; written into the text so the tool_call scorer reads them (evals.tools).
            text = reply_text(message.content, message.tool_calls)
            return Generation(text.strip(), None, time.perf_counter() - start)
        except openai.APIConnectionError as exc:
            where = self.base_url or "the OpenAI API"
            return Generation(None, f"cannot reach {where} ({_describe(exc.__cause__ or exc)}); start the server or fix base_url",
                              time.perf_counter() - start)
        except openai.APIStatusError as exc:
            return Generation(None, f"HTTP {exc.status_code} from {self.base_url or 'OpenAI'}: {_describe(exc)}",
                              time.perf_counter() - start)
        except Exception as exc:  # a malformed reply from a third-party server is a row error, not a crash
            return Generation(None, _describe(exc), time.perf_counter() - start)


def make_provider(spec: ProviderSpec, device: str = "auto") -> Provider:
    if spec.id.startswith(OPENAI_PREFIX):
        return OpenAIProvider(spec)
    return LocalProvider(spec, device=device)
