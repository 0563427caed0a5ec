#!/usr/bin/env bash
# Install evocade and what its sandbox needs into ./.venv (system packages via apt when root).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if ! command -v bwrap >/dev/null 2>&1 || ! command -v setpriv >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap util-linux >/dev/null
  else
    echo "install.sh: bubblewrap is missing; run: sudo apt-get install -y bubblewrap" >&2
    exit 1
  fi
fi

# The web view's tests (#13) drive a real headless Chromium from Debian's packages; Playwright's
# own browser download cannot work on these machines. Optional outside CI: skipped without it.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "install.sh: chromium is missing (web view tests will skip): sudo apt-get install -y chromium chromium-driver" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e '.[dev]'
# ocatari's declared dependencies add ~350 MB (opencv-python, pandas, seaborn, scikit-learn,
# keyboard) that RAM mode never uses; pyproject.toml lists what its imports really need.
"$VENV/bin/pip" install -q --no-deps 'ocatari==2.2.1'
# ocatari is imported the way the sandbox imports it: its vision stack (OpenCV, ...) is never used.
"$VENV/bin/python" -c "from sandbox.runtime.lean_imports import import_ocatari; import_ocatari(); import ale_py, RestrictedPython, pyseccomp"
echo "evocade installed in $VENV ($("$VENV/bin/evocade" --help >/dev/null && echo ok))"
