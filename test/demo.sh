#!/bin/sh
# `make demo`: try webproxyd without a grok.com account. Starts the fake
# grok.com (BUILD/fakegrok) on a free loopback port and webproxyd in front
# of it, with a throwaway config and data folder holding one demo token,
# on 127.0.0.1:3000 (or a free port when 3000 is taken). Prints the curl
# line that asks for a streamed answer and runs it once.
#
# In a terminal it then keeps serving until Ctrl-C; otherwise (stdin not
# a terminal: CI, a pipe) it stops right after that one answer and exits 0
# only if the answer arrived whole. Either way every process it started is
# stopped and the temporary folder removed.
#
# usage: sh test/demo.sh [BUILD]
set -u
build=${1:-build}
key=sk-demo
tmp=$(mktemp -d "${TMPDIR:-/tmp}/webproxyd-demo.XXXXXX") || exit 1
fpid=
wpid=

stop() { # stop pid: SIGTERM, then SIGKILL after 5 s
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

cleanup() {
	trap - EXIT INT TERM HUP
	stop "$wpid"
	stop "$fpid"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; echo "stopping the demo"; cleanup; exit 0' INT
trap 'cleanup; exit 143' TERM HUP

die() {
	echo "demo: $*" >&2
	exit 1
}

for b in "$build/webproxyd" "$build/fakegrok"; do
	[ -x "$b" ] || die "$b is missing: run make first"
done

# wait_for FILE REGEX PID: until FILE has a line matching REGEX (up to
# 10 s); fails at once if PID exits.
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		kill -0 "$3" 2>/dev/null || return 1
		[ $i -lt 100 ] || return 1
		sleep 0.1
		i=$((i + 1))
	done
}

# The fake grok.com, with quota for a long session of curls.
"$build/fakegrok" -l 127.0.0.1:0 -q 1000000 >"$tmp/fake.out" \
    2>"$tmp/fake.log" &
fpid=$!
wait_for "$tmp/fake.out" '^listening ' "$fpid" || {
	cat "$tmp/fake.log" >&2
	die "the fake grok.com did not start"
}
fake=$(sed -n 's/^listening //p' "$tmp/fake.out" | head -1)

mkdir -p "$tmp/data/accounts/grok"
cat >"$tmp/data/accounts/grok/token.json" <<'EOF'
{
  "ssoNormal": {
    "demo-token": {"createdTime": 1706745600000, "remainingQueries": -1,
      "heavyremainingQueries": -1, "status": "active", "failedCount": 0,
      "lastFailureTime": null, "lastFailureReason": null, "tags": ["demo"],
      "note": "served by the fake grok.com"}
  },
  "ssoSuper": {
    "demo-super-token": {"createdTime": 1706745600000, "remainingQueries": -1,
      "heavyremainingQueries": -1, "status": "active", "failedCount": 0,
      "lastFailureTime": null, "lastFailureReason": null, "tags": ["demo"],
      "note": "served by the fake grok.com"}
  }
}
EOF

# start_daemon LISTEN: start webproxyd; fails if it is not serving soon.
start_daemon() {
	cat >"$tmp/config.yaml" <<EOF
server:
  listen: "$1"
  workers: 1
  api_keys:
    - "$key"
  data_dir: "$tmp/data"
  log_level: "notice"
projects:
  grok:
    enabled: true
grok:
  upstream_url: "http://$fake"
  assets_url: "http://$fake"
EOF
	: >"$tmp/webproxyd.log"
	"$build/webproxyd" -f -c "$tmp/config.yaml" -p "$tmp/webproxyd.pid" \
	    >"$tmp/webproxyd.log" 2>&1 &
	wpid=$!
	if wait_for "$tmp/webproxyd.log" 'webproxyd started: ' "$wpid"; then
		return 0
	fi
	stop "$wpid"
	wpid=
	return 1
}

if ! start_daemon 127.0.0.1:3000; then
	echo "demo: 127.0.0.1:3000 is not available, taking a free port"
	start_daemon 127.0.0.1:0 || {
		cat "$tmp/webproxyd.log" >&2
		die "webproxyd did not start"
	}
fi
addr=$(sed -n 's/.*webproxyd started: [0-9]* workers on \([^,]*\),.*/\1/p' \
    "$tmp/webproxyd.log" | head -1)
[ -n "$addr" ] || die "cannot read the address from the log"
i=0
until curl -fsS --max-time 2 "http://$addr/healthz" >/dev/null 2>&1; do
	[ $i -lt 50 ] || die "webproxyd does not answer on $addr"
	sleep 0.1
	i=$((i + 1))
done

body='{"model": "grok-4.1", "messages": [{"role": "user", "content": "Hello, Grok!"}], "stream": true}'
cat <<EOF

webproxyd is serving http://$addr in front of a fake grok.com
(http://$fake) with a demo token; the API key is $key.
Paste this in another terminal to see a streamed answer:

curl -N http://$addr/v1/chat/completions -H "Content-Type: application/json" -H "Authorization: Bearer $key" -d '$body'

Running it once now:

EOF
curl -sS -N --max-time 30 "http://$addr/v1/chat/completions" \
    -H "Content-Type: application/json" -H "Authorization: Bearer $key" \
    -d "$body" | tee "$tmp/answer"
echo
if ! grep -q '^data: \[DONE\]' "$tmp/answer"; then
	cat "$tmp/webproxyd.log" >&2
	die "the answer did not arrive whole"
fi

if [ -t 0 ]; then
	echo "Also try GET http://$addr/v1/models, or \"stream\": false."
	echo "Press Ctrl-C to stop the demo."
	while kill -0 "$wpid" 2>/dev/null; do
		wait "$wpid"
	done
	cat "$tmp/webproxyd.log" >&2
	die "webproxyd stopped by itself"
fi
echo "stdin is not a terminal: stopping the demo"
exit 0
