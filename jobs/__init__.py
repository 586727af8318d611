"""Thin entrypoints: the CLI and the Ray jobs (`python -m jobs.<name>`)."""
