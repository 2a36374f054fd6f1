"""Grounding and extractive composition with fixed passages, plus questions that are code, links or logs."""

from __future__ import annotations

from assistant.answer import answer, check_question, is_covered, passage_support
from assistant.engines.base import Passage
from assistant.engines.extractive import ExtractiveEngine, clean_markdown
from assistant.question_input import prepare_question, url_words

EPOCHS = {
    "source": "en/openai.md", "heading": "Hyperparameters and their defaults", "lang": "en",
    "text": ("Defaults were chosen to work across use cases. n_epochs: default 4. An epoch is one full pass "
             "over the training dataset. batch_size: default about 0.2% of the examples, capped at 256."),
}
BATCH = {
    "source": "en/hyper.md", "heading": "Batch size", "lang": "en",
    "text": "The default batch size is 8 on a GPU. Larger batches need more memory.",
}
ENCODING_ZH = {
    "source": "zh/datasets.md", "heading": "数据集 > 中文编码：UTF-8、BOM 与 GBK", "lang": "zh",
    "text": ("训练工具默认按 UTF-8 读取。用 Excel 导出的中文数据常常是 GBK，或带 BOM 的 UTF-8。"
             "出现 `浣犲ソ` 这类乱码时，用 utf-8-sig 或 gb18030 读取，并保存为 CSV UTF-8。"),
}
LR_TABLE = {
    "source": "en/hyperparameters.md", "heading": "Learning rate", "lang": "en",
    "text": ("The peak learning rate matters more than any other setting. Usual AdamW values:\n\n"
             "| method | learning rate |\n|---|---|\n| LoRA / QLoRA, models up to ~13B | 2e-4 |\n"
             "| full fine-tuning | 1e-5 to 5e-5, often 2e-5 |\n\nWith Lion, divide these values by 3-10."),
}


def fixed(*docs):
    def retriever(query, k=8, collection="default"):
        return list(docs)[:k]
    return retriever


def test_answer_about_default_epochs_leads_with_the_value_and_drops_batch_size():
    result = answer("How many epochs does OpenAI use by default?", retriever=fixed(EPOCHS, BATCH))
    assert result.grounded
    assert result.answer.startswith("n_epochs: default 4")
    assert "batch" not in result.answer.lower()


def test_table_rows_are_quoted_with_their_column_names():
    assert "full fine-tuning: learning rate 1e-5 to 5e-5, often 2e-5." in clean_markdown(LR_TABLE["text"])
    result = answer("What learning rate for full fine-tuning?", retriever=fixed(LR_TABLE))
    assert result.grounded and "2e-5" in result.answer.splitlines()[0]


def test_sentences_of_another_section_need_the_whole_focus():
    passages = [Passage(n=1, source="a.md", heading="LoRA learning rate", lang="en",
                        text="LoRA uses a learning rate of 2e-4. It is ten times the full fine-tuning rate."),
                Passage(n=2, source="b.md", heading="OpenAI-style preset", lang="en",
                        text="The openai-style preset sets its learning rate multiplier from the batch size.")]
    chosen = ExtractiveEngine().select("What learning rate should I use for LoRA?", passages, "en")
    assert {p.n for p, _ in chosen} == {1}  # the preset aside of section 2 is left out
    assert chosen[0][1].startswith("LoRA uses a learning rate of 2e-4")


def test_garbled_chinese_question_is_covered_by_the_encoding_section():
    # The reported failure: the UTF-8/BOM/GBK section ranked first, yet the question was declined.
    rare = {"乱码": 0.003}  # as the index reports it: a word few chunks hold
    result = answer("上传的测试集里中文显示成乱码怎么办？", retriever=fixed(ENCODING_ZH),
                    rarity=lambda terms: {t: rare.get(t, 0.2) for t in terms})
    assert result.grounded, result.answer
    assert "UTF-8" in result.answer and result.citations[0].source == "zh/datasets.md"


def test_heading_counts_towards_support():
    p = Passage(n=1, source="x.md", heading="Gradient checkpointing", lang="en", text="It recomputes activations.")
    bare = Passage(n=1, source="x.md", heading="", lang="en", text="It recomputes activations.")
    assert passage_support("what does gradient checkpointing recompute", p) > passage_support(
        "what does gradient checkpointing recompute", bare)


def test_reranker_score_vetoes_and_vouches():
    text = "Warmup raises the learning rate linearly over the first steps."
    coincidence = Passage(n=1, source="x.md", heading="", lang="en", text=text, rerank_score=-6.0)
    assert not is_covered("how does learning rate warmup work", [coincidence])
    paraphrase = Passage(n=1, source="x.md", heading="Warmup", lang="en", text=text, rerank_score=4.0)
    assert is_covered("how do I ramp up the learning rate slowly at the start", [paraphrase])
    plain = Passage(n=1, source="x.md", heading="Warmup", lang="en", text=text)
    assert not is_covered("how do I ramp up the learning rate slowly at the start", [plain])


def test_off_topic_still_declines_with_the_glossary():
    for question in ("What is the capital of Australia?", "感冒了应该吃什么药？", "房贷利率怎么计算？"):
        assert not answer(question, retriever=fixed(EPOCHS, ENCODING_ZH, LR_TABLE)).grounded, question


# --- questions that are not plain prose -----------------------------------------------------------------

LOG = "My fine-tuning run crashes, what should I change?\n" + "\n".join(
    f"{{'loss': {1.2 - i * 0.01:.3f}, 'epoch': {i / 100:.2f}, 'step': {i}}}" for i in range(60)) + """
Traceback (most recent call last):
  File "train.py", line 10, in <module>
    trainer.train()
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.
"""


def test_long_log_keeps_the_question_and_the_error_with_a_notice():
    notices: list[str] = []
    q = prepare_question(LOG, notices)
    assert q.splitlines()[0] == "My fine-tuning run crashes, what should I change?"
    assert "CUDA out of memory" in q and "'loss'" not in q
    assert notices and "lines of log" in notices[0] and "left out" in notices[0]


def test_log_question_is_answered_from_troubleshooting():
    oom = {"source": "en/troubleshooting.md", "heading": "CUDA out of memory (OOM) during training", "lang": "en",
           "text": "CUDA out of memory means the GPU is full. Lower the batch size first, then enable gradient checkpointing."}
    result = answer(LOG, retriever=fixed(oom, BATCH))
    assert result.grounded and result.citations[0].source == "en/troubleshooting.md"
    assert any("lines of log" in n for n in result.notices)


def test_only_a_url_searches_its_words():
    notices: list[str] = []
    assert prepare_question("https://huggingface.co/docs/peft/main/en/conceptual_guides/lora", notices) == \
        "huggingface peft conceptual guides lora"
    assert "only a link" in notices[0]
    assert url_words("www.example.com/guide/learning-rate.html") == "example guide learning rate"


def test_only_code_searches_its_names_and_errors():
    notices: list[str] = []
    q = prepare_question("```python\nconfig = LoraConfig(r=8, lora_alpha=16)\nmodel = get_peft_model(model, config)\n```", notices)
    assert {"LoraConfig", "lora_alpha", "get_peft_model"} <= set(q.split())
    assert "only code" in notices[0]


def test_plain_question_passes_unchanged_and_long_prose_is_trimmed():
    notices: list[str] = []
    assert check_question("  What LoRA rank should I use?  ", notices) == "What LoRA rank should I use?"
    assert notices == []
    long = check_question("What learning rate should I use? " + "please " * 400, notices)
    assert len(long) <= 1000 and "only the first 1000" in notices[0]
