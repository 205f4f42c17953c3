"""The built-in plugins. Each subpackage is registered through the project's own ``simclr`` entry points,
exactly as a third-party package's plugin would be, and uses only the public plugin API."""
