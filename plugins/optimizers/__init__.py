"""Built-in optimizers plugin."""
