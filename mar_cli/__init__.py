"""The ``mar`` command, composed at the top of the package graph: it imports the command modules
of ``mar_core`` (run, data), ``api`` (server and client), ``worker`` (stack) and ``benchmarks``;
no lower package imports it."""
