#!/bin/sh
# Run the tests: `run.sh unit BUILD` runs the unit binaries, `run.sh all
# BUILD` adds the integration, client and browser tests (node's test
# runner, against the real daemon and the fake grok.com; the client tests
# drive it with the official openai package, the browser tests drive the
# admin panel in /usr/bin/chromium with playwright-core, each installed
# here by `npm ci` from its package-lock.json when missing or out of
# date). The last line is "N passed, N failed".
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

# san_check WHAT: under `make asan` (WEBPROXYD_SAN_REPORTS set), each new
# sanitizer report in that folder (ASan and UBSan write one file per
# process there, workers and the fake included, whose stderr nobody
# reads) is shown and counts as one failure.
san_check() {
	sd=${WEBPROXYD_SAN_REPORTS:-}
	[ -n "$sd" ] && [ -d "$sd" ] || return 0
	mkdir -p "$sd/seen"
	for sr in "$sd"/*.[0-9]*; do
		[ -f "$sr" ] || continue
		echo "not ok - sanitizer report after $1: $(basename "$sr")"
		sed 's/^/# /' "$sr"
		fail=$((fail + 1))
		mv "$sr" "$sd/seen/"
	done
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
	san_check "$(basename "$t")"
done

# node_suite NAME FILE...: run node's test runner (TAP) on the files and
# add its "# pass" / "# fail" counts; a runner that fails without a
# failing test counts as one failure.
node_suite() {
	name=$1
	shift
	echo "== $name"
	log=$(mktemp)
	WEBPROXYD_BUILD=$(cd "$build" && pwd) node --test --test-reporter=tap \
	    --test-concurrency=2 "$@" >"$log" 2>&1
	rc=$?
	cat "$log"
	p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log" | tail -1)
	f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log" | tail -1)
	pass=$((pass + ${p:-0}))
	fail=$((fail + ${f:-0}))
	if [ -z "$p" ] || { [ $rc -ne 0 ] && [ "${f:-0}" -eq 0 ]; }; then
		echo "not ok - $name runner exited $rc"
		fail=$((fail + 1))
	fi
	rm -f "$log"
	san_check "$name"
}

# npm_deps DIR: install test/DIR's pinned packages unless node_modules
# already holds exactly what the lockfile says (a copy of it is kept as
# the stamp).
npm_deps() {
	c="$here/$1"
	stamp="$c/node_modules/.webproxyd-lock"
	if [ -d "$c/node_modules" ] && cmp -s "$c/package-lock.json" "$stamp"; then
		return 0
	fi
	echo "npm ci in test/$1"
	npmlog=$(mktemp)
	if (cd "$c" && npm ci --no-audit --no-fund) >"$npmlog" 2>&1; then
		rm -f "$npmlog"
		cp "$c/package-lock.json" "$stamp"
	else
		cat "$npmlog"
		rm -f "$npmlog"
		return 1
	fi
}

# npm_suite DIR: its packages, then its tests; a failed install is one
# failure.
npm_suite() {
	if npm_deps "$1"; then
		node_suite "$1" "$here/$1"/*.test.mjs
	else
		echo "== $1"
		echo "not ok - npm ci failed in test/$1"
		fail=$((fail + 1))
	fi
}

if [ "$mode" = all ]; then
	node_suite integration "$here"/integration/*.test.mjs
	npm_suite client
	# The admin panel in Debian's chromium (playwright-core).
	npm_suite browser
fi

# The benchmark harness (test/bench/), small and quick: this checks that
# it still works, not the figures; `make bench` measures.
bench_sanity() {
	echo "== bench (sanity run)"
	log=$(mktemp)
	node "$here"/bench/bench.mjs --quick --build "$build" >"$log" 2>&1
	rc=$?
	cat "$log"
	if grep -q '^[0-9]* passed, [0-9]* failed$' "$log"; then
		add "$(cat "$log")"
		if [ $rc -ne 0 ] && grep -q ' 0 failed$' "$log"; then
			echo "not ok - bench sanity run exited $rc"
			fail=$((fail + 1))
		fi
	else
		echo "not ok - bench sanity run exited $rc without a summary"
		fail=$((fail + 1))
	fi
	rm -f "$log"
	san_check bench
}

if [ "$mode" = all ]; then
	bench_sanity
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
