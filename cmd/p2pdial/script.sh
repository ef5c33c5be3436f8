#!/bin/sh
# p2pdial: the default ladder, dialling side. Each rung reads the ticket the
# rung before it failed on; p2pcatch takes the first connection any rung makes.
usage() {
	echo "usage: p2pdial [-Fv] [-t SECONDS] PEER [PROG...]" >&2
	exit 100
}
F= v=
while getopts Fvt: o; do
	case $o in
	F) F=-F ;;
	v) v=-v ;;
	t) P2P_TIMEOUT=$OPTARG; export P2P_TIMEOUT ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
peer=$1
shift
# The default ladder needs rvd: say so plainly rather than as a failed rung.
if [ -z "${P2P_LADDER:-}" ] && [ -z "${P2P_RVD:-}" ]; then
	echo "p2pdial: no rendezvous address: set P2P_RVD" >&2
	exit 100
fi
ladder=${P2P_LADDER:-"rvinvite -e $v \"\$P2PPEER\" | dialdirect -e $v | dialport -e $v | dialproxy $v | relaycat $v"}
exec p2pcatch -n p2pdial $F $v -P "$peer" "$ladder" "$@"
