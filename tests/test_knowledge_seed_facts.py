"""Every fact of the source material (../shared/seed/, a Chinese Q&A page on fine-tuning) is answerable.

Each row: the seed fact (paraphrased), a question a user would ask (English or Chinese), the doc
topic that must come back, and the fact the grounded answer must contain. The index is real
(MiniLM + Chroma + jieba BM25) over the shipped docs that carry these facts plus the topics that
compete with them; the slow test asks a sample through the default collection (the whole corpus).
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

pytestmark = pytest.mark.integration

# (seed fact, question, topic file the passage must come from, regex the answer must contain)
SEED_FACTS = [
    ("SD config folder: config_file.toml + sample_prompt.toml", "Which two files are in the config folder for Stable Diffusion fine-tuning?", "sd-full-finetune-notes", r"sample_prompt"),
    ("config_file.toml has six argument groups", "config_file.toml 有哪几组参数？", "sd-full-finetune-notes", r"saving_arguments"),
    ("v2 + v_parameterization true -> SD 2.x", "What do v2 and v_parameterization set to true do?", "sd-full-finetune-notes", r"2\.x|V2"),
    ("default optimizer AdamW, AdamW8bit when VRAM is short", "微调 Stable Diffusion 时显存不够用什么优化器？", "sd-full-finetune-notes|stable-diffusion-kohya", r"AdamW8bit"),
    ("Lion needs about 1/3 of the AdamW learning rate", "For Stable Diffusion fine-tuning with Lion, what fraction of the AdamW learning rate should I use?", "sd-full-finetune-notes", r"1/3|one third"),
    ("SD full fine-tune LR: 2e-6 single GPU, 1e-7 multi GPU", "SD 全量微调多卡训练学习率设多少？", "sd-full-finetune-notes", r"1e-7"),
    ("1024 px + fp16 + xformers: ~17.1 GB at batch 1", "How much VRAM does SD fine-tuning need at 1024 px with fp16 and xformers?", "sd-full-finetune-notes", r"17\.1"),
    ("1024 px + fp16 + xformers: ~26.7 GB at batch 4", "1024 分辨率、fp16、xformers 下 batch size 4 需要多少显存？", "sd-full-finetune-notes", r"26\.7"),
    ("a 24 GB+ card is recommended", "What GPU memory is recommended for 1024 px SD fine-tuning?", "sd-full-finetune-notes", r"24 GB"),
    ("weights in output_dir; WebUI models/Stable-diffusion", "微调好的 SD 模型放到 WebUI 的哪个文件夹？", "sd-full-finetune-notes", r"models/Stable-diffusion"),
    ("OpenAI legacy base models ada/babbage/curie/davinci, default curie", "Which base model does an OpenAI legacy fine-tuning job start from by default?", "openai-legacy-fine-tuning|sd-full-finetune-notes", r"curie"),
    ("CLI: upload file, create job, stream events", "OpenAI 旧版命令行启动微调后会做哪几步？", "openai-legacy-fine-tuning", r"上传|Files API"),
    ("n_epochs default 4", "What is the default n_epochs for OpenAI fine-tuning?", "openai-legacy-fine-tuning", r"\b4\b"),
    ("batch_size default 0.2% of examples, max 256", "OpenAI 微调的 batch_size 默认是多少？", "openai-legacy-fine-tuning", r"0\.2%"),
    ("learning_rate_multiplier 0.05/0.1/0.2, try 0.02-0.2", "What values should I try for learning_rate_multiplier?", "openai-legacy-fine-tuning", r"0\.02"),
    ("compute_classification_metrics default False", "compute_classification_metrics 默认值是什么？", "openai-legacy-fine-tuning", r"False"),
    ("only the Owner role can delete a fine-tuned model", "Who can delete a fine-tuned model in an OpenAI organization?", "openai-legacy-fine-tuning|openai-fine-tuning", r"Owner"),
    ("a new model may need minutes before serving; retry", "刚训练好的 OpenAI 微调模型请求超时怎么办？", "openai-legacy-fine-tuning", r"几分钟|minutes"),
    ("Flux LoRA: natural-language captions", "Flux LoRA 的图片描述应该用什么写？", "lora-training-panel", r"自然语言"),
    ("Flux trainer dataset folder", "Where do the training images go in the Flux one-click trainer?", "lora-training-panel", r"qinglong"),
    ("repeats: anime 10-15, people 30-50, scenery ~100", "How many repeats for photos of real people in LoRA training?", "lora-training-panel", r"30-50"),
    ("epochs 10-20, too many overfit", "LoRA 训练循环次数一般设多少？", "lora-training-panel", r"10-20"),
    ("total steps = images x repeats x epochs", "How do I compute the total training steps for an image LoRA?", "lora-training-panel|image-lora-training", r"repeats"),
    ("DIM anime 32, people 32-128, scenery >=128", "二次元 LoRA 的 DIM 推荐多少？", "lora-training-panel", r"32"),
    ("DIM 64 -> ~70 MB, 128 -> ~140 MB", "How big is a LoRA file at DIM 128?", "lora-training-panel", r"140"),
    ("sample every n steps = 50", "sample every n steps 设为 50 是什么意思？", "lora-training-panel", r"50"),
    ("batch size 1 at <=6 GB VRAM, 4 or 6 at >=12 GB", "What batch size with 12 GB of VRAM for image LoRA?", "lora-training-panel", r"4 or 6"),
    ("1e-4 = 0.0001, 1e-5 = 0.00001", "学习率 1e-4 等于多少？", "lora-training-panel", r"0\.0001"),
    ("PromptLayer test sets: JSON and CSV", "Which dataset formats does PromptLayer accept?", "testing-and-test-sets-notes", r"CSV"),
    ("uploaded Chinese datasets can be garbled", "上传中文测试集出现乱码怎么办？", "testing-and-test-sets-notes|datasets", r"UTF-8"),
    ("captioning target = caption shifted right by one", "How is the target sequence built for an image captioning model?", "testing-and-test-sets-notes", r"shifted right|one position"),
    ("fine-tuning writes weights, config, metadata, optimizer state", "微调完成后会生成哪些文件？", "testing-and-test-sets-notes", r"优化器状态"),
    ("Zhen Huan role-play check", "How do I check that the Zhen Huan role-play fine-tune worked?", "testing-and-test-sets-notes", r"甄远道"),
    ("merge, chatBotLora.py, web demo", "合并之后怎么用 web demo 测试？", "testing-and-test-sets-notes", r"chatBotLora\.py"),
    ("value of fine-tuning: millions of tokens vs tens of thousands", "How many tokens can fine-tuning use compared with a few-shot prompt?", "fine-tuning-basics", r"millions"),
    ("FFT vs PEFT, PEFT most popular", "全量微调和 PEFT 哪个更流行？", "fine-tuning-basics", r"PEFT"),
    ("base_model_name_or_path / finetune_model_path", "What is finetune_model_path when loading LoRA weights?", "fine-tuning-basics", r"finetune_model_path"),
    ("multi-GPU: edit --include localhost:0", "单机多卡微调要改脚本里的什么参数？", "fine-tuning-basics", r"localhost"),
    ("SFT simple, RLHF research-grade, not for beginners", "Is RLHF suitable for beginners?", "fine-tuning-basics", r"not suitable|beginners"),
    ("100,000 QA pairs, about a day, iterate weekly or daily", "微调一个助手要收集多少问答对，要多久？", "fine-tuning-basics", r"100,000|10 万"),
    ("Llama 2: base vs assistant models", "Can the Llama 2 base model be used directly as an assistant?", "fine-tuning-basics", r"cannot|base model"),
    ("ChatGLM3-Turbo strong at task decomposition; SuperCLUE-Agent", "What is SuperCLUE-Agent?", "open-models-and-gpu-choice", r"SuperCLUE-Agent"),
    ("OpenAI open-sourced Point-E, Whisper, Jukebox, CLIP", "OpenAI 开源了哪些模型？", "open-models-and-gpu-choice", r"Whisper"),
    ("Zhipu multimodal: CogAgent-18B, CogVLM-17B, VisualGLM-6B", "Which multimodal models has Zhipu AI open-sourced?", "open-models-and-gpu-choice|model-landscape", r"CogVLM"),
    ("H100 cost-effective but scarce; A100 trains most models", "现在大多数模型训练用什么显卡？", "open-models-and-gpu-choice|gpus", r"A100"),
    ("TPU and Gaudi2: performance hinges on software", "What is the challenge with TPUs and Gaudi2?", "open-models-and-gpu-choice|gpus", r"software"),
    ("GPU made to take load off the CPU; NVIDIA and ATI", "GPU 是为了什么而诞生的？", "open-models-and-gpu-choice", r"CPU"),
]

TOPICS = sorted({t for _, _, topics, _ in SEED_FACTS for t in topics.split("|")})


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory):
    """The docs carrying the seed facts (en + zh) indexed once with the real embedder."""
    from knowledge import docs_path
    from knowledge.ingest import ingest

    home = tmp_path_factory.mktemp("seed-home")
    corpus = tmp_path_factory.mktemp("seed-corpus")
    for lang in ("en", "zh"):
        (corpus / lang).mkdir()
        # Competing topics too, so the passage must win against neighbours, not stand alone.
        for topic in TOPICS + ["hyperparameters", "openai-fine-tuning", "stable-diffusion-kohya", "lora"]:
            shutil.copy(docs_path() / lang / f"{topic}.md", corpus / lang / f"{topic}.md")
    old = os.environ.get("TUNEPILOT_HOME")
    os.environ["TUNEPILOT_HOME"] = str(home)
    try:
        ingest([corpus], collection="seed", progress=False)
    finally:
        if old is None:
            os.environ.pop("TUNEPILOT_HOME", None)
        else:
            os.environ["TUNEPILOT_HOME"] = old
    return home


def _topic(source: str) -> str:
    return source.rsplit("/", 1)[-1].removesuffix(".md")


@pytest.mark.parametrize("fact, question, topics, expected", SEED_FACTS, ids=[f[0][:40] for f in SEED_FACTS])
def test_seed_fact_is_retrieved_and_answered(seed_index, monkeypatch, fact, question, topics, expected):
    from assistant.answer import answer
    from knowledge.retrieval import search

    monkeypatch.setenv("TUNEPILOT_HOME", str(seed_index))
    wanted = set(topics.split("|"))
    hits = search(question, k=5, collection="seed")
    assert wanted & {_topic(h.source) for h in hits}, [h.source for h in hits]
    result = answer(question, collection="seed")
    assert result.grounded, result.answer
    assert wanted & {_topic(c.source) for c in result.citations}, [c.source for c in result.citations]
    assert re.search(expected, result.answer, re.I), result.answer


def test_every_seed_section_has_facts_in_both_languages():
    from knowledge import docs_path

    for topic in TOPICS:
        assert (docs_path() / "en" / f"{topic}.md").is_file() and (docs_path() / "zh" / f"{topic}.md").is_file(), topic
    langs = {"en": 0, "zh": 0}
    for _, question, _, _ in SEED_FACTS:
        langs["zh" if re.search(r"[\u4e00-\u9fff]", question) else "en"] += 1
    assert min(langs.values()) >= 15, langs


@pytest.mark.slow
def test_seed_facts_through_the_default_collection():
    """The whole shipped corpus (and whatever else the default collection holds) competes."""
    from assistant.answer import answer

    for _, question, topics, expected in SEED_FACTS[::6]:
        result = answer(question)
        assert result.grounded, (question, result.answer)
        assert set(topics.split("|")) & {_topic(c.source) for c in result.citations}, (question, result.citations)
        assert re.search(expected, result.answer, re.I), (question, result.answer)
