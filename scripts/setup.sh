#!/usr/bin/env bash
# Set up temseg in ./.venv: the CPU build of PyTorch first, then temseg with its test extras.
#
#   bash scripts/setup.sh
#
# Why torch first: an unpinned torch requirement in a fresh environment makes pip fetch the
# multi-GB CUDA build. Installing the pinned CPU build first means temseg's own `torch>=2.4`
# is already satisfied. Variables:
#   PYTHON=python3.11          interpreter for the venv (>= 3.11)
#   TORCH_SPEC=torch==2.13.0   the torch requirement installed first
#   TORCH_INDEX=URL            a PyTorch wheel index, e.g. https://download.pytorch.org/whl/cpu
#                              (CPU-only on Linux) or https://download.pytorch.org/whl/cu128
#                              (GPU nodes); empty = pip's configured indexes
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX=${TORCH_INDEX:-}

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "setup: installing $TORCH_SPEC ${TORCH_INDEX:+from $TORCH_INDEX}" >&2
  if [ -n "$TORCH_INDEX" ]; then
    "${pip[@]}" install "$TORCH_SPEC" --index-url "$TORCH_INDEX"
  else
    "${pip[@]}" install "$TORCH_SPEC"
  fi
fi
echo "setup: installing temseg and its dependencies (ray, mlflow, zarr, optuna, ncempy, ...)" >&2
"${pip[@]}" install -e ".[test]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
.venv/bin/python -c "import torch, ray, mlflow, zarr, optuna; print('setup: ready (torch', torch.__version__ + ', ray', ray.__version__ + ', mlflow', mlflow.__version__ + ')')" >&2
