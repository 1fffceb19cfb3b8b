#!/usr/bin/env bash
# Idempotent set-up of the Python environment (and the browser the e2e tests drive).
# The virtual environment lives in the XDG cache, outside the clone, and is reused while constraints.txt,
# pyproject.toml and the clone's path are unchanged; .venv at the repo root links to it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/xmodal"
venv="$cache/venv"
py="${PYTHON:-python3}"

"$py" -c 'import sys; assert sys.version_info >= (3, 11), "xmodal needs Python >= 3.11"' \
  || { echo "error: $py is older than 3.11; set PYTHON=/path/to/python3.11" >&2; exit 1; }

stamp_want=$( (cat constraints.txt pyproject.toml; echo "$repo"; "$py" --version) | sha256sum | cut -c1-16)
stamp_file="$venv/.xmodal-stamp"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  echo "==> creating the virtual environment in $venv"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$py" -m venv "$venv"
fi
ln -sfn "$venv" .venv

if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_want" ]; then
  echo "==> installing Python packages (first run: about 3 minutes and 6 GB, torch is the large part)"
  t0=$(date +%s)
  "$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel
  "$venv/bin/python" -m pip install --progress-bar on -c constraints.txt -r <(
    "$venv/bin/python" - <<'PY'
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(p["dependencies"] + p["optional-dependencies"]["dev"]))
PY
  )
  "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
  echo "$stamp_want" > "$stamp_file"
  echo "==> Python packages ready in $(( $(date +%s) - t0 ))s"
else
  echo "==> Python environment up to date ($venv)"
fi

# Browser for the end-to-end tests: Debian's chromium (playwright cannot download browsers here).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing Debian's chromium for the browser tests (about 20 s)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || { echo "error: apt-get install chromium failed; the browser tests need /usr/bin/chromium" >&2; exit 1; }
  else
    echo "warning: /usr/bin/chromium is missing and this is not root: run 'sudo apt-get install chromium'" >&2
  fi
fi
