#!/bin/bash
# Runs the whole suite and, if pytest's faulthandler reports a test stuck for 120 s, attaches
# gdb to the hung process and writes every thread's native backtrace to $OUT/hang_bt.txt (the
# suite hung in 2 of 8 runs on 2026-12-04, in PySide6/pyqtgraph calls: see the session note).
# Usage: scripts/suite_hangwatch.sh [OUT_DIR]   (needs gdb; run from the repository root;
# PYTHON=... for another interpreter than .venv/bin/python)
set -u
OUT=${1:-/tmp/hangwatch}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
QT_QPA_PLATFORM=offscreen "$PY" -X faulthandler -m pytest -q -p no:randomly \
  > "$OUT/suite.log" 2>&1 &
PID=$!
while kill -0 "$PID" 2>/dev/null; do
  if grep -q "Timeout (0:02:00)" "$OUT/suite.log"; then
    gdb -batch -p "$PID" -ex "set pagination off" -ex "thread apply all bt 40" \
      > "$OUT/hang_bt.txt" 2>&1
    echo "hang: native backtraces in $OUT/hang_bt.txt"
    kill "$PID"
    exit 1
  fi
  sleep 5
done
wait "$PID"
status=$?
tail -1 "$OUT/suite.log"
exit $status
