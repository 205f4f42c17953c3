"""Built-in callbacks plugin."""
