#!/bin/sh
# p2plisten: the default answering side: rvlisten, with extra ports from
# $P2P_PORTS (e.g. "443 80") so that peers behind port filters can reach us.
usage() {
	echo "usage: p2plisten [-v] NAME PROG [ARG...]" >&2
	exit 100
}
v=
while getopts v o; do
	case $o in
	v) v=-v ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || usage
ports=
for p in ${P2P_PORTS:-}; do
	ports="$ports -p $p"
done
exec rvlisten $v $ports "$@"
