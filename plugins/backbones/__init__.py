"""Built-in backbones plugin."""
