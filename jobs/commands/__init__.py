"""One module per CLI command group; each defines `register(subparsers)`.

`jobs.cli` discovers them, so adding a command never means editing a shared list.
"""
