#!/usr/bin/env bash
# Installs mlops-gates from this action's own checkout into a virtual environment under the runner's temp
# folder (reused by later steps and actions of the job), and puts its bin folder on PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${MLOPS_GATES_VENV:-}" ] && [ -x "$MLOPS_GATES_VENV/bin/mlops-gates" ]; then
  # a runner (or image) that already has mlops-gates: use it, install nothing
  echo "$MLOPS_GATES_VENV/bin" >> "$GITHUB_PATH"
  echo "using mlops-gates in $MLOPS_GATES_VENV"
  exit 0
fi
python="${MLOPS_GATES_PYTHON:-python3}"
version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/mlops_gates/_version.py")"
venv="${RUNNER_TEMP:-/tmp}/mlops-gates-${version}"
if [ ! -x "$venv/bin/mlops-gates" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$root${MLOPS_GATES_EXTRAS:-}"
fi
echo "$venv/bin" >> "$GITHUB_PATH"
echo "mlops-gates ${version} ready in $venv"
