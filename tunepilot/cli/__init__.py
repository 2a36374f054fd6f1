"""The `tunepilot` command: one module per command group (`register(app)`), one error boundary (`common`)."""
