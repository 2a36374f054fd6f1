"""tunepilot's shell and shared core.

Layers, bottom to top (each may import only the layers below it; `.importlinter` enforces this):

    tunepilot.core      errors, settings, workspace, text decoding + atomic writes, language, table reading
    trainer.models      model registry + GGUF provisioning, device/dtype policy, generation, chat format, catalogue
    trainer.data        training-data formats, tokenisation with loss masks, data checks
    trainer.planning    config schema + I/O, presets, validation rules, memory estimate, diffusion/kohya
    trainer.training    the recipe, loop, methods, callbacks, merge, job card, finish_run
    trainer.jobs | knowledge | evals     background jobs; the document index; the eval harness
    trainer.server | assistant           the OpenAI-compatible API; answers and config-from-text
    tunepilot.demo      the end-to-end demo (train, then evaluate)
    tunepilot.cli | tunepilot.ui         the `tunepilot` command and the Streamlit app (thin shells)
"""
