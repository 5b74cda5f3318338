"""The `vivit` command: the Click group and one module per command."""

from __future__ import annotations

from vivit_cli.cli.main import cli, main

__all__ = ["cli", "main"]
