/* -h and -V: the same for every tool, so that each main only adds two cases. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p.h"

#ifndef P2P_VERSION
#define P2P_VERSION "unknown"	/* the Makefile passes the one version */
#endif

static int helping;

/* Print "NAME VERSION" on stdout and exit 0: -V. */
void
print_version(void)
{
	printf("%s %s\n", getprogname(), P2P_VERSION);
	exit(fflush(stdout) == 0 ? EX_CONNECTED : EX_SYSTEM);
}

/* A leading --version, which getopt cannot take, does what -V does. */
void
opt_version(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0)
		print_version();
}

/*
 * The usage text, and exit: on stderr with 100 for a mistake, on stdout
 * with 0 when asked for with -h (so that "tool -h | less" works).
 */
void
usage_exit(const char *text)
{
	fputs(text, helping ? stdout : stderr);
	if (!helping)
		exit(EX_USAGE_);
	exit(fflush(stdout) == 0 ? EX_CONNECTED : EX_SYSTEM);
}

/* -h: run the tool's usage(), which ends in usage_exit, as an answer. */
void
opt_help(void (*usage)(void))
{
	helping = 1;
	usage();
	exit(EX_CONNECTED);	/* not reached: usage() exits */
}
