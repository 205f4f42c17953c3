"""Built-in losses plugin."""
