/* The direct connection's handshake: "P2P <id> <token>", answered "OK". */
#include <errno.h>
#include <string.h>

#include "p2p.h"

/* Read the dialer's "P2P id token" line within ms into id and token. */
int
hs_read(int fd, char id[ID_HEX + 1], char token[ID_HEX + 1], int ms)
{
	char line[LINE_MAX_ + 1], *w[4];

	if (line_read(fd, line, sizeof(line), ms) <= 0)
		return -1;
	if (line_words(line, w, 4) != 3 || strcmp(w[0], "P2P") != 0 ||
	    !hex_valid(w[1], ID_HEX) || !hex_valid(w[2], ID_HEX)) {
		line_write(fd, 1000, "ERR bad handshake");
		errno = EPROTO;
		return -1;
	}
	strlcpy(id, w[1], ID_HEX + 1);
	strlcpy(token, w[2], ID_HEX + 1);
	return 0;
}

/* Answer the dialer: "OK" when its token is the one we expect. */
int
hs_answer(int fd, const char *token, const char *want)
{
	if (want == NULL || !secret_equal(token, want)) {
		line_write(fd, 1000, "ERR bad token");
		errno = EACCES;
		return -1;
	}
	return line_write(fd, 2000, "OK");
}
