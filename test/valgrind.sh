#!/bin/sh
# The unit tests (and the fuzz targets' replays) under valgrind's
# memcheck: `valgrind.sh BUILD` runs each BUILD/test/t_* that `make test`
# built. A memory error or a definite or possible leak fails the binary
# (--error-exitcode), as does its own failure or a run over 10 minutes.
# Installs valgrind when missing (test/deps.sh). The last line is "N
# passed, N failed", one per binary.
set -u
build=$1
here=$(cd "$(dirname "$0")" && pwd)
pass=0
fail=0

sh "$here/deps.sh" valgrind || exit 1
for t in "$build"/test/t_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	log=$(mktemp)
	start=$(date +%s)
	timeout 600 valgrind -q --error-exitcode=99 --leak-check=full \
	    "$t" >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	if [ $rc -eq 0 ]; then
		echo "ok - valgrind $name (${secs} s)"
		pass=$((pass + 1))
	else
		case $rc in
		99) why="memory errors or leaks" ;;
		124) why="timed out" ;;
		*) why="exited $rc" ;;
		esac
		echo "not ok - valgrind $name: $why (${secs} s)"
		sed 's/^/# /' "$log"
		fail=$((fail + 1))
	fi
	rm -f "$log"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
