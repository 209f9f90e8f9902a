# Sourced by the GPU scripts (tests/gpu_*.sh): output folder, Python, and the packages the GPU
# machine's image lacks. That image has torch but not every package of ours: carry the missing ones
# as wheels in .whl/ (the device tool's README says how); the CLI needs SQLAlchemy (its db commands
# are always registered).
set -u
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XRAY_RUNTIME=pytorch
PY=${PY:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
