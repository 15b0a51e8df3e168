#!/bin/sh
# A newcomer's first run: a fresh clone of SRC into DEST, `make setup` (its own venv), then
# `make run` three times (the first is the first `analyze` after setup), each timed.
#     sh benchmarks/first_run.sh SRC DEST LABEL     e.g. sh benchmarks/first_run.sh . /tmp/fresh new
set -e
SRC=$1; DEST=$2; LABEL=$3
if [ -e "$DEST" ]; then echo "$DEST exists: give a new folder"; exit 2; fi
git clone -q "$SRC" "$DEST"; cd "$DEST"
export SPARSETOPO_CACHE_DIR="$DEST/.fresh-cache"   # the digits split cache starts empty too
unset PYTHONPATH NUMBA_CACHE_DIR
echo "== $LABEL $(git log --oneline -1 | cut -c1-60)"
/usr/bin/time -f "$LABEL setup: %e s wall, %U s user, %S s sys" make setup > setup.log 2>&1 || { tail -20 setup.log; exit 1; }
tail -1 setup.log
grep "compiled or loaded" setup.log || true
for i in 1 2 3; do
  uptime | sed "s/.*load/load/"
  /usr/bin/time -f "$LABEL run $i: %e s wall, %U s user, %S s sys" make run > run$i.log 2>&1
  tail -1 run$i.log; grep "^time:" run$i.log
done
