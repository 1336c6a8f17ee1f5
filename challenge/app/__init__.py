"""The application: the `challenge` command and what only a command uses (warm start, workers, servers, the live view, the demo)."""
