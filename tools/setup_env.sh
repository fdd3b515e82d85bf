#!/usr/bin/env bash
# Create .venv/ with PyTorch and this package (editable, with the dev extras).
# On a machine without an NVIDIA GPU it installs the CPU build of PyTorch (TORCH_CPU_SPEC,
# default torch==2.13.0), so that no CUDA packages are pulled; with a GPU, a regular build.
# Re-running it is cheap: an existing .venv with torch is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${pip[@]}" "torch>=2.1"
  else
    "${pip[@]}" "${TORCH_CPU_SPEC:-torch==2.13.0}"
  fi
fi
"${pip[@]}" -e ".[dev]"
.venv/bin/python -c "import torch, pose; print('ready: torch', torch.__version__, '| pose', pose.__version__)"
