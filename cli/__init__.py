"""The `recsys` command line, at the top of the stack: it composes the commands of every package."""
