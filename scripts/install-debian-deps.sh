#!/usr/bin/env bash
# Debian packages pyembed's tests and benchmarks use beyond Node.js and a shared-library Python:
# the system python3 with its shared libpython, and python3-numpy / python3-pandas for the data
# tests (selected with PYEMBED_PYTHON=/usr/bin/python3), and pkg-config, with which the pymport
# benchmark peer (bench/package.json, installed by `npm run bench`) finds libpython when it builds. Safe to run again.
set -euo pipefail
packages=(python3 libpython3-dev python3-numpy python3-pandas python3-venv pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "debian packages: all present (${packages[*]})"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
