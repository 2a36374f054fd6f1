"""Config planning: the schema (`schema`), reading and writing config files (`config_io`), presets,
the validation rules with their doc citations (`rules`), the memory estimate (`memory`,
`memory_data`), the GPU catalogue (`hardware`) and diffusion/kohya configs (`diffusion`)."""
