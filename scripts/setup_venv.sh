#!/usr/bin/env bash
# Creates .venv with Python 3.10 and installs the project with every dependency pinned by
# constraints.txt. Idempotent: does nothing when .venv matches constraints.txt and setup.py.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
stamp="$VENV/.installed"
want=$(cat constraints.txt setup.py | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
pins=$(sha256sum < constraints.txt | cut -d' ' -f1)
if [ -f "$VENV/.pins" ] && [ "$(cat "$VENV/.pins")" = "$pins" ] && [ -x "$VENV/bin/python" ]; then
  # Same pins, new setup.py (packages, entry points): reinstall the project alone.
  echo "==> setup.py changed: reinstalling the project into $VENV"
  "$VENV/bin/python" -m pip install --quiet --use-pep517 --no-build-isolation --no-deps -c constraints.txt -e . \
    && echo "$want" > "$stamp" && exit 0
fi
py=$(bash scripts/find_python.sh)
echo "==> creating $VENV with $py"
rm -rf "$VENV"
"$py" -m venv "$VENV"
fail() {
  echo "error: installing the dependencies failed (see the pip output above)." >&2
  echo "Check that PyPI is reachable and that $py is CPython 3.10, then run 'make setup' again." >&2
  exit 1
}
echo "==> installing pinned dependencies (constraints.txt); this takes a few minutes"
# A current setuptools first: the editable install then writes plain console scripts (PEP 660).
# The old setuptools of a fresh venv writes pkg_resources entry scripts, which refuse to start
# when any installed distribution's metadata name is spelled differently (jaraco.context).
"$VENV/bin/python" -m pip install --quiet -c constraints.txt setuptools wheel || fail
"$VENV/bin/python" -m pip install --quiet --use-pep517 --no-build-isolation -c constraints.txt -e '.[dev]' || fail
"$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check; fail; }
echo "$want" > "$stamp"
echo "$pins" > "$VENV/.pins"
echo "==> $VENV ready"
