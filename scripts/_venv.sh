# Sourced by scripts/test and scripts/demo: create/update ./.venv with the project installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CRONICORN_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.cronicorn-installed"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)-${CRONICORN_EXTRAS:-dev}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing Cronicorn into $VENV ..." >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip uv >/dev/null
  "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -e "$ROOT[${CRONICORN_EXTRAS:-dev}]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
