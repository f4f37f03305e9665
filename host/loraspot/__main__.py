"""`python -m loraspot`, the same as the `loraspot` command."""

from loraspot.cli.main import run

run()
