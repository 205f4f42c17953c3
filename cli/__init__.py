"""The `simclr` command."""
