"""`python -m vivit_cli` runs the command-line tool."""

from vivit_cli.cli.main import main

main()
