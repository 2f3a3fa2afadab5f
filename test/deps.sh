#!/bin/sh
# Install the Debian packages named on the command line that are missing.
# As root it runs apt-get; otherwise it prints the command and fails.
set -eu
missing=""
for p in "$@"; do
	case "$p" in
	nodejs|npm)
		# A node from elsewhere (nvm, nodesource) is as good as Debian's.
		command -v "${p%js}" >/dev/null 2>&1 && continue
		command -v node >/dev/null 2>&1 && [ "$p" = nodejs ] && continue
		;;
	esac
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"ok installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "missing Debian packages:$missing" >&2
	echo "run: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
