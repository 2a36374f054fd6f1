"""Models: the registry and GGUF provisioning of the default model, device/dtype policy, the one
generation stack (batched, locked), the chat format, and the catalogue of known architectures."""
