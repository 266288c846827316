#!/usr/bin/env bash
# Creates the virtualenv .venv at the repository root and installs the pinned
# requirements.txt into it, again only when that file has changed since the last install.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/requirements.txt"
# The stamp lives inside the venv, so a venv made anew always gets its install.
STAMP="$VENV/.requirements.sha256"

# A venv whose interpreter no longer runs (python3 upgraded or removed) is made anew.
if [ -d "$VENV" ] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    echo "venv: $VENV is broken, recreating it"
    python3 -m venv --clear "$VENV"
elif [ ! -d "$VENV" ]; then
    python3 -m venv "$VENV"
    echo "venv: created $VENV"
fi

want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null || true)" = "$want" ]; then
    echo "venv: requirements.txt unchanged, nothing to install"
    exit 0
fi

"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQUIREMENTS"
echo "$want" >"$STAMP"
echo "venv: installed requirements.txt"
