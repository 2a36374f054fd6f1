"""Each scorer on hand-made cases with exact expected numbers."""

from __future__ import annotations

import math

import pytest

from evals.errors import EvalError
from evals.scorers import SCORERS, RowContext, build_scorers, scorer_class
from evals.spec import ScorerSpec


def ctx(output, expected=None, latency=None, provider=None, messages=None):
    return RowContext(output=output, expected=expected, prompt="q", messages=messages or [], latency_s=latency,
                      provider=provider)


def score(name, output, expected=None, **params):
    return SCORERS[name](params).score(ctx(output, expected))


def test_registry_lists_every_scorer_the_issue_names():
    for name in ("exact", "contains", "icontains", "regex", "json_valid", "json_schema", "rouge_l", "bleu", "chrf",
                 "embedding", "classification", "llm_judge", "latency", "perplexity"):
        assert name in SCORERS
    assert scorer_class("rouge").name == "rouge_l"
    with pytest.raises(EvalError, match="Unknown scorer 'nope'"):
        scorer_class("nope")


def test_exact_trims_and_normalises_full_width():
    assert score("exact", " Paris \n", "Paris") == 1.0
    assert score("exact", "ＡＢＣ１２３", "ABC123") == 1.0  # full-width IME output
    assert score("exact", "paris", "Paris") == 0.0


def test_contains_and_icontains():
    assert score("contains", "The answer is Paris.", "Paris") == 1.0
    assert score("contains", "The answer is paris.", "Paris") == 0.0
    assert score("icontains", "The answer is paris.", "Paris") == 1.0
    assert score("contains", "学习率通常为 2e-4", "2e-4") == 1.0
    assert SCORERS["contains"]({"value": "yes"}).score(ctx("oh yes")) == 1.0
    assert score("contains", "anything", "") is None  # empty expected: not applicable, not a free 1


def test_regex_with_pattern_option_and_expected_as_pattern():
    assert score("regex", "order 1234 shipped", pattern=r"\d{4}") == 1.0
    assert score("regex", "no digits", pattern=r"\d{4}") == 0.0
    assert score("regex", "HELLO", pattern="hello", flags="i") == 1.0
    assert score("regex", "abc123", r"^[a-z]+\d+$") == 1.0
    with pytest.raises(EvalError, match="invalid"):
        SCORERS["regex"]({"pattern": "("})
    with pytest.raises(EvalError, match="has no option"):
        SCORERS["regex"]({"patern": "x"})


def test_json_valid_and_schema():
    assert score("json_valid", '{"a": 1}') == 1.0
    assert score("json_valid", '```json\n{"a": [1, 2]}\n```') == 1.0
    assert score("json_valid", "{'a': 1}") == 0.0
    schema = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    scorer = SCORERS["json_schema"]({"schema": schema})
    assert scorer.score(ctx('{"name": "小星"}')) == 1.0
    assert scorer.score(ctx('{"name": 3}')) == 0.0
    assert scorer.score(ctx("not json")) == 0.0
    with pytest.raises(EvalError, match="needs a `schema`"):
        SCORERS["json_schema"]({})
    with pytest.raises(EvalError, match="schema is invalid"):
        SCORERS["json_schema"]({"schema": {"type": "nonsense"}})


def test_rouge_l_words_for_english_characters_for_chinese():
    # LCS 3 of 3 hypothesis words and 6 reference words: P=1, R=0.5, F1=2/3.
    assert score("rouge_l", "the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    # 我爱北京 vs 我爱上海: LCS 2 of 4 characters each: P=R=F1=0.5.
    assert score("rouge_l", "我爱北京", "我爱上海") == pytest.approx(0.5)
    assert score("rouge_l", "完全不同", "abc") == 0.0
    assert score("rouge_l", "LoRA 微调", "lora 微调！") == pytest.approx(1.0)


def test_bleu_and_chrf_scaled_to_unit_interval():
    import sacrebleu

    assert score("bleu", "the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert score("bleu", "我爱北京天安门", "我爱北京天安门") == pytest.approx(1.0)
    assert score("bleu", "xyz", "the cat sat on the mat") == pytest.approx(0.0)
    # Chinese references use sacrebleu's zh tokenizer (13a would see one token and give 0).
    expected = sacrebleu.sentence_bleu("我爱北京", ["我爱北京天安门"], tokenize="zh").score / 100
    assert score("bleu", "我爱北京", "我爱北京天安门") == pytest.approx(expected)
    assert expected > 0
    assert score("chrf", "hello world", "hello world") == pytest.approx(1.0)
    assert score("chrf", "qqq", "hello world") == pytest.approx(0.0)
    corpus = SCORERS["bleu"]().corpus([ctx("我爱北京天安门", "我爱北京天安门")])
    assert corpus == {"corpus_bleu": pytest.approx(1.0), "tokenize": "zh"}


def test_classification_per_label_and_macro_f1():
    scorer = SCORERS["classification"]()
    gold = ["pos", "neg", "pos", "neg"]
    pred = ["pos", "pos", "pos", "neg"]
    rows = [ctx(p, g) for p, g in zip(pred, gold)]
    assert [scorer.score(r) for r in rows] == [1.0, 0.0, 1.0, 1.0]
    result = scorer.corpus(rows)
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["per_label"]["pos"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8), "support": 2}
    assert result["per_label"]["neg"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert result["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)


def test_classification_maps_free_text_to_given_labels():
    scorer = SCORERS["classification"]({"labels": ["positive", "negative"]})
    assert scorer.score(ctx("Answer: Positive.", "positive")) == 1.0
    assert scorer.score(ctx("I cannot tell", "negative")) == 0.0
    assert scorer.predict("I cannot tell") == "<other>"


@pytest.mark.integration
def test_embedding_similarity_orders_paraphrase_above_unrelated():
    scorer = SCORERS["embedding"]()
    same = scorer.score(ctx("LoRA trains small adapters", "LoRA trains small adapters"))
    para = scorer.score(ctx("A cat is sitting on the mat", "The cat sits on the mat"))
    other = scorer.score(ctx("Stock prices fell sharply today", "The cat sits on the mat"))
    assert same == pytest.approx(1.0, abs=1e-5)
    assert para > 0.6 > other


def test_llm_judge_is_skipped_with_a_reason_when_unconfigured(monkeypatch):
    for var in ("TUNEPILOT_OPENAI_BASE_URL", "TUNEPILOT_OPENAI_API_KEY", "TUNEPILOT_OPENAI_MODEL",
                "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL"):
        monkeypatch.delenv(var, raising=False)
    reason = SCORERS["llm_judge"]().unavailable_reason()
    assert reason and "no judge model configured" in reason


def test_llm_judge_grade_parsing():
    from evals.scorers.judge import parse_grade

    assert parse_grade("SCORE: 7\nmostly right") == pytest.approx(0.7)
    assert parse_grade("score：10 完全正确") == pytest.approx(1.0)
    assert parse_grade("I'd say 4") == pytest.approx(0.4)
    assert parse_grade("SCORE: 15") == pytest.approx(1.0)
    assert parse_grade("no idea") is None


def test_latency_and_perplexity_directions():
    assert SCORERS["latency"]().score(ctx("x", latency=0.25)) == 0.25
    assert not SCORERS["latency"].higher_is_better and not SCORERS["perplexity"].higher_is_better
    # Perplexity needs a local model; without one it is "not applicable" (None), never 0.
    assert SCORERS["perplexity"]().score(ctx("x", "expected")) is None


def test_perplexity_matches_a_manual_teacher_forced_computation(tiny_model_dir):
    import torch

    from evals.providers import LocalProvider
    from evals.spec import ProviderSpec
    from trainer.models.chat_format import render_prompt

    provider = LocalProvider(ProviderSpec(id=str(tiny_model_dir)), device="cpu")
    messages = [{"role": "user", "content": "What is LoRA?"}]
    expected = "LoRA adds low-rank adapters."
    value = SCORERS["perplexity"]().score(ctx("ignored", expected, provider=provider, messages=messages))

    loaded = provider.loaded()
    tok, model = loaded.tokenizer, loaded.model
    prompt_ids = tok(render_prompt(tok, messages), add_special_tokens=False)["input_ids"]
    full = render_prompt(tok, messages + [{"role": "assistant", "content": expected}], add_generation_prompt=False)
    full_ids = tok(full, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([full_ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    # Token t is predicted from position t-1; only the reply's tokens count.
    nll = [-logp[t - 1, full_ids[t]].item() for t in range(len(prompt_ids), len(full_ids))]
    assert value == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-3)
    assert value > 1.0


def test_build_scorers_validates_options_up_front():
    scorers = build_scorers([ScorerSpec(name="exact"), ScorerSpec(name="rouge", weight=2)])
    assert [s.name for s in scorers] == ["exact", "rouge_l"]
    with pytest.raises(EvalError, match="has no option"):
        build_scorers([ScorerSpec(name="exact", params={"x": 1})])
