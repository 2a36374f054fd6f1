"""Optional PromptLayer logging: each generation and its scores, when PROMPTLAYER_API_KEY is set.

Without the key nothing is sent anywhere. With it, every scored row becomes one PromptLayer request
log (`PromptLayer.log_request`: the chat input, the reply, timing, generation parameters, tags and
the row's template variables), and each bounded score is attached with `track.score` as an integer
0-100 named after the scorer (the SDK accepts only that range). The SDK's endpoint follows its own
setting, the PROMPTLAYER_BASE_URL variable, so it can point at a self-hosted or test server.
Logging problems never stop an eval: they are counted and reported as a notice.
"""

from __future__ import annotations

import logging

from tunepilot.core.settings import settings

log = logging.getLogger(__name__)


class PromptLayerLogger:
    def __init__(self, client=None, run_name: str = "", tags: list[str] | None = None):
        self.client = client
        self.run_name = run_name
        self.tags = ["tunepilot-eval"] + list(tags or [])
        self.failures = 0
        self.logged = 0

    @property
    def enabled(self) -> bool:
        return self.client is not None

    @classmethod
    def from_env(cls, run_name: str = "", tags: list[str] | None = None) -> "PromptLayerLogger":
        api_key = settings().promptlayer_api_key
        if not api_key:
            return cls(None, run_name, tags)
        from promptlayer import PromptLayer

        # throw_on_error=False: a logging outage must not abort an hour-long eval.
        return cls(PromptLayer(api_key=api_key, throw_on_error=False), run_name, tags)

    def log(self, record: dict, messages: list[dict], row_vars: dict, provider, generation, started: float,
            ended: float, scorers) -> None:
        from evals.datasets import cell_text

        chat_in = {"type": "chat", "messages": [
            {"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in messages]}
        reply = record["output"] if record["output"] is not None else ""
        chat_out = {"type": "chat", "messages": [{"role": "assistant", "content": [{"type": "text", "text": reply}]}]}
        model_id = getattr(provider, "model", None) or provider.spec.id
        try:
            response = self.client.log_request(
                provider=provider.promptlayer_provider,
                model=model_id,
                input=chat_in,
                output=chat_out,
                request_start_time=started,
                request_end_time=ended,
                parameters={"max_new_tokens": generation.max_new_tokens, "temperature": generation.temperature,
                            "top_p": generation.top_p},
                tags=self.tags,
                metadata={"run": self.run_name, "row": str(record["row"]), "model": record["model"],
                          "key": record["key"]},
                prompt_input_variables={k: cell_text(v) for k, v in row_vars.items()},
                status="ERROR" if record["error"] else "SUCCESS",
                error_message=record["error"],
            )
        except Exception as exc:  # the SDK may still raise on validation; never fatal
            log.warning("PromptLayer log_request failed: %s", exc)
            self.failures += 1
            return
        request_id = response.get("id") if isinstance(response, dict) else None
        if request_id is None:
            self.failures += 1
            return
        self.logged += 1
        for scorer in scorers:
            value = record["scores"].get(scorer.name)
            if value is None or not scorer.bounded:
                continue
            score = int(round(max(0.0, min(1.0, value)) * 100))
            try:
                ok = self.client.track.score(request_id=request_id, score=score, score_name=scorer.name)
            except Exception as exc:
                log.warning("PromptLayer track.score failed: %s", exc)
                ok = False
            if ok is False:
                self.failures += 1
