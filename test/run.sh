#!/bin/sh
# Run the tests: `run.sh unit BUILD` runs the unit binaries, `run.sh all
# BUILD` adds the integration tests (node's test runner, against the real
# daemon and the fake grok.com). The last line is "N passed, N failed".
set -u
mode=$1
build=$2
pass=0
fail=0
here=$(cd "$(dirname "$0")" && pwd)

add() { # "N passed, M failed" or "# pass N" / "# fail M" lines
	p=$(printf '%s\n' "$1" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' | tail -1)
	f=$(printf '%s\n' "$1" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' | tail -1)
	pass=$((pass + ${p:-0}))
	fail=$((fail + ${f:-0}))
}

for t in "$build"/test/t_*; do
	[ -x "$t" ] || continue
	echo "== unit: $(basename "$t")"
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	if ! printf '%s\n' "$out" | grep -q '^[0-9]* passed, [0-9]* failed$'; then
		echo "not ok - $(basename "$t") exited $rc without a summary"
		fail=$((fail + 1))
	else
		add "$out"
		if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -q ' 0 failed$'; then
			echo "not ok - $(basename "$t") exited $rc"
			fail=$((fail + 1))
		fi
	fi
done

if [ "$mode" = all ]; then
	echo "== integration"
	log=$(mktemp)
	WEBPROXYD_BUILD=$(cd "$build" && pwd) node --test --test-reporter=tap \
	    --test-concurrency=2 "$here"/integration/*.test.mjs >"$log" 2>&1
	rc=$?
	cat "$log"
	p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -1)
	pass=$((pass + ${p:-0}))
	fail=$((fail + ${f:-0}))
	if [ -z "$p" ] || { [ $rc -ne 0 ] && [ "${f:-0}" -eq 0 ]; }; then
		echo "not ok - integration runner exited $rc"
		fail=$((fail + 1))
	fi
	rm -f "$log"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
