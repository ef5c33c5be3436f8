#!/bin/sh
# p2plisten: the default answering side: rvlisten, with extra ports from
# $P2P_PORTS (e.g. "443 80") so that peers behind port filters can reach us.
usage() {
	echo "usage: p2plisten [-hVv] NAME PROG [ARG...]"
}
[ "${1:-}" = --version ] && set -- -V
v=
while getopts hVv o; do
	case $o in
	h) usage; exit 0 ;;
	V) echo "p2plisten @VERSION@"; exit 0 ;;
	v) v=-v ;;
	*) usage >&2; exit 100 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { usage >&2; exit 100; }
ports=
for p in ${P2P_PORTS:-}; do
	ports="$ports -p $p"
done
exec rvlisten $v $ports "$@"
