"""Packaged YAML configs (presets), read with ``importlib.resources``."""
