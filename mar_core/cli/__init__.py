"""The library's own commands (``mar run``, ``mar data``) and the CLI argument types every command
module shares. The ``mar`` program itself is composed in ``mar_cli`` (top of the package graph)."""
