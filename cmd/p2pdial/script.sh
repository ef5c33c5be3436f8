#!/bin/sh
# p2pdial: the default ladder, dialling side. Each rung reads the ticket the
# rung before it failed on; p2pcatch takes the first connection any rung makes
# and hands it to p2pseal, which seals it end to end (unless -u or -F).
usage() {
	echo "usage: p2pdial [-FhSuVv] [-t SECONDS] PEER [PROG...]"
}
bad() {
	echo "p2pdial: $*" >&2
	exit 100
}
# Seconds as the rungs take them: a positive decimal number below a day.
seconds() {
	case $1 in
	'' | . | *[!0-9.]* | *.*.*) return 1 ;;
	esac
	case $1 in
	*[1-9]*) ;;
	*) return 1 ;;
	esac
	i=${1%%.*}
	[ ${#i} -le 5 ] && [ "${i:-0}" -lt 86400 ]
}
# A host:port word; the rest of its checks are the rungs' own.
hostport() {
	case $1 in
	*:*:*) case $1 in \[*\]:*) ;; *) return 1 ;; esac ;;
	*:*) ;;
	*) return 1 ;;
	esac
	case ${1##*:} in
	'' | *[!0-9]*) return 1 ;;
	esac
}
[ "${1:-}" = --version ] && set -- -V
F= v= S= seal=1 u=
while getopts :FhSuVvt: o; do
	case $o in
	F) F=-F seal= ;;
	h) usage; exit 0 ;;
	S) S=-S ;;
	u) seal= ;;
	V) echo "p2pdial @VERSION@"; exit 0 ;;
	v) v=-v ;;
	t) seconds "$OPTARG" || bad "bad -t: $OPTARG (want seconds, e.g. 3)"
	   P2P_TIMEOUT=$OPTARG; export P2P_TIMEOUT ;;
	:) echo "p2pdial: -$OPTARG needs an argument" >&2; usage >&2; exit 100 ;;
	*) echo "p2pdial: unknown option -$OPTARG" >&2; usage >&2; exit 100 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { usage >&2; exit 100; }
peer=$1
shift
# The default ladder needs rvd: say so plainly rather than as a failed rung.
if [ -z "${P2P_LADDER:-}" ] && [ -z "${P2P_RVD:-}" ]; then
	bad "no rendezvous address: set P2P_RVD"
fi
# Every rung that logs on would refuse a bad one, each in its own line.
# rv: the words joined by commas, as known_peers names the service.
# Split by the shell itself: a pipe to tr(1) cost two processes before the
# first rung could start, on every dial.
rv=
set -f
ifs=$IFS
IFS=" 	
,"
for w in ${P2P_RVD:-}; do
	[ -n "$w" ] || continue
	hostport "$w" || bad "bad P2P_RVD (HOST:PORT ...): $P2P_RVD"
	rv=${rv:+$rv,}$w
done
IFS=$ifs
set +f
# Unsealed, the invitation says so: the listener's p2pseal need not wait.
[ -n "$seal" ] || u=-u
ladder=${P2P_LADDER:-"rvinvite -e $u $v \"\$P2PPEER\" | dialdirect -e $v | dialpunch -e $v | dialport -e $v | dialproxy $v | relaycat $u $v"}
# The peer as known_peers names it: NAME@RVD.
if [ -n "$seal" ]; then
	set -- p2pseal -n p2pdial -c $v $S "$peer@${rv:--}" "$@"
fi
exec p2pcatch -n p2pdial $F $v -P "$peer" "$ladder" "$@"
