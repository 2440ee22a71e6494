#!/usr/bin/env bash
# Create the MONAI Label environment that serves mednet's localisation bundles.
#
#   bash scripts/monailabel_env.sh [ENV_DIR]      (default: .label-venv in the repository)
#
# MONAI Label 0.8.5 imports torchvision, and no torchvision loads against the local CPU
# build of torch that the main environment uses; so MONAI Label gets its own virtual
# environment with PyPI's regular torch 2.13.0 + torchvision 0.28.0 (about 5 GB, it runs
# on the CPU when there is no GPU), monailabel with the pins it needs to import
# (pydicom 2 for pydicom-seg, and the dicomweb-client / pynetdicom that accept it), and
# mednet itself (its transforms are named in the bundles' configs) without dependencies,
# so that pip does not move MONAI Label's pins. Checked recipe: ../shared/ENVIRONMENT.md.
set -euo pipefail
cd "$(dirname "$0")/.."
env_dir=${1:-.label-venv}
python=${PYTHON:-python3}

if [ -x "$env_dir/bin/python" ] && "$env_dir/bin/python" -c "import monailabel, torchvision, mednet" 2>/dev/null; then
  "$env_dir/bin/pip" install -q --no-deps -e . >/dev/null  # refresh mednet
  echo "MONAI Label environment ready: $env_dir"
  exit 0
fi
"$python" -m venv "$env_dir"
# --isolated: ignore the pip configuration that points at the local CPU-only wheels
"$env_dir/bin/pip" install -q --isolated torch==2.13.0 torchvision==0.28.0
"$env_dir/bin/pip" install -q monailabel==0.8.5 "pydicom<3" "dicomweb-client[gcp]<0.60" "pynetdicom<3"
"$env_dir/bin/pip" install -q --no-deps -e .
"$env_dir/bin/python" -c "import monailabel, torchvision, mednet.transforms; print('monailabel', monailabel.__version__)"
echo "MONAI Label environment ready: $env_dir (start the server with PATH=$env_dir/bin:\$PATH monailabel start_server ...)"
