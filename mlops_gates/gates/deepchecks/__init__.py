"""The deepchecks gate: its own environment (env), the script that runs there (runner), and the gate."""
