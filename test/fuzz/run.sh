#!/bin/sh
# Run libFuzzer targets: `run.sh BUILD SECONDS TARGET...` runs each
# BUILD/fz_<target> for SECONDS with test/fuzz/corpus/<target>/ as its
# seeds (never written), BUILD/corpus/<target>/ for what it finds, its
# dictionary when test/fuzz/dict/<target>.dict exists, and crashes in
# BUILD/artifacts/<target>/. Prints one line of figures per target and,
# for a crash, the end of its report; exits 1 if any target crashed.
set -u
build=$1
secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
crashed=0

# stat NAME LOG: a -print_final_stats figure.
stat() {
	sed -n "s/^stat::$1: *//p" "$2" | tail -1
}

# last FIELD LOG: the last value libFuzzer printed for "cov:", "ft:"...
last() {
	sed -n "s/.* $1 \([0-9]*\).*/\1/p" "$2" | tail -1
}

printf '%-8s %11s %8s %6s %7s %6s  %s\n' target runs exec/s cov ft corpus \
    result
for t in "$@"; do
	bin=$build/fz_$t
	work=$build/corpus/$t
	art=$build/artifacts/$t
	log=$build/log/$t.log
	mkdir -p "$work" "$art" "$build/log"
	set -- -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
	    -artifact_prefix="$art/"
	[ -f "$here/dict/$t.dict" ] && set -- "$@" -dict="$here/dict/$t.dict"
	"$bin" "$@" "$work" "$here/corpus/$t" >"$log" 2>&1
	rc=$?
	result=ok
	if [ $rc -ne 0 ]; then
		result="CRASH (exit $rc): $(ls -t "$art" | head -1)"
		crashed=1
	fi
	printf '%-8s %11s %8s %6s %7s %6s  %s\n' "$t" \
	    "$(stat number_of_executed_units "$log")" \
	    "$(stat average_exec_per_sec "$log")" "$(last cov: "$log")" \
	    "$(last ft: "$log")" "$(last corp: "$log")" "$result"
	if [ $rc -ne 0 ]; then
		grep -E -A40 '^==[0-9]+==|runtime error|invariant broken' \
		    "$log" | head -60 | sed 's/^/    /'
	fi
done
[ $crashed -eq 0 ]
