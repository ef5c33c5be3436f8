#!/bin/sh
# p2plisten: the default answering side: rvlisten, with extra ports from
# $P2P_PORTS (e.g. "443 80") so that peers behind port filters can reach us,
# serving every connection through p2pseal (unless -u).
usage() {
	echo "usage: p2plisten [-hSuVv] [-a AUTHORIZED] NAME PROG [ARG...]"
}
[ "${1:-}" = --version ] && set -- -V
v= a= S= seal=1
while getopts :a:hSuVv o; do
	case $o in
	a) a=$OPTARG ;;
	h) usage; exit 0 ;;
	S) S=-S ;;
	u) seal= ;;
	V) echo "p2plisten @VERSION@"; exit 0 ;;
	v) v=-v ;;
	:) echo "p2plisten: -$OPTARG needs an argument" >&2; usage >&2; exit 100 ;;
	*) echo "p2plisten: unknown option -$OPTARG" >&2; usage >&2; exit 100 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || { usage >&2; exit 100; }
ports=
for p in ${P2P_PORTS:-}; do
	ports="$ports -p $p"
done
if [ -n "$seal" ]; then
	name=$1
	shift
	set -- "$name" p2pseal -s $v $S ${a:+-a "$a"} "$@"
elif [ -n "$a$S" ]; then
	echo "p2plisten: -a and -S need sealing: they cannot go with -u" >&2
	exit 100
fi
exec rvlisten $v $ports "$@"
