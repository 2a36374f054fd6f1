"""Request bodies shared by /v1/chat/completions and /v1/completions, and their sampling settings.

Unknown fields are accepted and ignored (clients send things like `user` or `presence_penalty`);
fields whose meaning we cannot honour (n > 1, logprobs, the legacy `functions`, tools outside the chat
API) are refused with a 400 that says so, rather than silently giving a different answer than the
client asked for. `tools` on /v1/chat/completions are read by `trainer.server.chat`.
"""

from __future__ import annotations

import time
import uuid

from pydantic import BaseModel, ConfigDict, Field

from trainer.models.generation import Prompt, SamplingParams
from trainer.server.errors import APIError
from trainer.server.model_pool import ModelHandle
from trainer.server.settings import ServerSettings

MAX_STOP_SEQUENCES = 4


class SamplingFields(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(..., min_length=1, description="Model id: gemma-3-270m, a registered name, a folder, or ft:...")
    temperature: float | None = Field(None, ge=0, le=2, description="0 is greedy; default 1 as in OpenAI's API.")
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="Newer name for max_tokens.")
    stop: str | list[str] | None = None
    n: int | None = Field(None, ge=1)
    stream: bool | None = False
    stream_options: dict | None = None
    seed: int | None = None
    ignore_eos: bool = Field(False, description="Extension (as in vLLM): generate exactly max_tokens tokens.")

    def stop_list(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOP_SEQUENCES:
            raise APIError(400, f"'stop' takes at most {MAX_STOP_SEQUENCES} sequences; got {len(stops)}.", param="stop")
        return [s for s in stops if s]

    def refuse_unsupported(self, tools_allowed: bool = False) -> None:
        """400 for fields we cannot honour; `tools_allowed`: the chat route reads `tools` itself."""
        if (self.n or 1) != 1:
            raise APIError(400, "Only n=1 is supported; send several requests for several answers.", param="n")
        extra = self.model_extra or {}
        if extra.get("logprobs") or extra.get("top_logprobs"):
            raise APIError(400, "logprobs are not supported by tunepilot serve; leave 'logprobs' unset.", param="logprobs")
        response_format = extra.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type", "text") != "text":
            raise APIError(400, f"response_format {response_format.get('type')!r} is not supported: local models are "
                                "not constrained to JSON here; ask for JSON in the prompt and parse the text.",
                           param="response_format")
        if extra.get("functions") or extra.get("function_call"):
            raise APIError(400, "The legacy 'functions'/'function_call' parameters are not supported; send the same "
                                "schemas as 'tools' ([{\"type\": \"function\", \"function\": {...}}]) to "
                                "/v1/chat/completions.", param="functions")
        if not tools_allowed and (extra.get("tools") or extra.get("tool_choice")):
            raise APIError(400, "Tool calling needs the chat API: send 'tools' to /v1/chat/completions with messages.",
                           param="tools")

    @property
    def include_usage_in_stream(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

    def sampling_params(self, prompt: Prompt, handle: ModelHandle, settings: ServerSettings) -> SamplingParams:
        """Resolve max_tokens against the model's context length (OpenAI's 400 when it cannot fit)."""
        asked = self.max_completion_tokens or self.max_tokens
        room = (handle.context_length - prompt.token_count) if handle.context_length else None
        if room is not None and room < 1:
            raise APIError(400, f"This model's maximum context length is {handle.context_length} tokens and the "
                                f"prompt alone has {prompt.token_count}; shorten the prompt.",
                           param="messages", code="context_length_exceeded")
        if asked is None:
            max_tokens = settings.default_max_tokens if room is None else min(settings.default_max_tokens, room)
        elif room is not None and asked > room:
            raise APIError(400, f"This model's maximum context length is {handle.context_length} tokens; the prompt "
                                f"has {prompt.token_count} and max_tokens asks for {asked}. Lower max_tokens to "
                                f"{room} or less, or shorten the prompt.",
                           param="max_tokens", code="context_length_exceeded")
        else:
            max_tokens = asked
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=self.seed,
            ignore_eos=self.ignore_eos,
        )


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
