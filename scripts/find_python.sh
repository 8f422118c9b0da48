#!/usr/bin/env bash
# Prints the path of a Python 3.10 interpreter: $PYTHON if set, then PATH, then pyenv's versions.
# TFX 1.16 supports Python 3.9 and 3.10 only; exits 1 with instructions when none is found.
set -u
is_py310() { "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' >/dev/null 2>&1; }
candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
for name in python3.10 python3 python; do
  path=$(command -v "$name" 2>/dev/null) && candidates+=("$path")
done
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for path in "$root"/versions/3.10.*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
  [ -x "$path" ] && candidates+=("$path")
done
for path in "${candidates[@]}"; do
  if is_py310 "$path"; then echo "$path"; exit 0; fi
done
cat >&2 <<'MSG'
error: no Python 3.10 interpreter found (TFX 1.16 needs Python 3.9 or 3.10).
Looked at $PYTHON, python3.10/python3/python on PATH and $(pyenv root)/versions/3.10.*.
Install one, e.g. `pyenv install 3.10.13`, or point PYTHON at it: `make PYTHON=/path/to/python3.10 run`.
MSG
exit 1
