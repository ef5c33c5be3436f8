/*
 * Fuzz ticket_read: any bytes on a dialer's stdin. A ticket that reads
 * must write out again, and what is written must read back to the same
 * ticket (written the same way).
 */
#include "fuzz.h"

static FILE *devnull;

/* t written to a string (malloc'd); *len its length. */
static char *
written(const struct ticket *t, size_t *len)
{
	char *s = NULL;
	FILE *f = open_memstream(&s, len);

	CHECK(f != NULL);
	CHECK(ticket_write(f, t) == 0);
	fclose(f);
	return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ticket t, t2;
	char err[256], *w1, *w2;
	size_t l1, l2;
	FILE *f;
	int r;

	fuzz_quiet();
	if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
		abort();
	if (size == 0)		/* fmemopen refuses an empty buffer */
		return 0;
	if ((f = fmemopen((void *)data, size, "r")) == NULL)
		abort();
	err[0] = '\0';
	r = ticket_read(f, &t, err, sizeof(err));
	fclose(f);
	CHECK(r >= -1 && r <= 1);
	CHECK(r != -1 || (err[0] != '\0' && memchr(err, '\0', sizeof(err))));
	if (r == 1) {
		CHECK(t.naddr >= 0 && t.naddr <= TICKET_ADDRS);
		CHECK(t.nport >= 0 && t.nport <= TICKET_PORTS);
		CHECK(t.ntried >= 0 && t.ntried <= TICKET_TRIED);
		CHECK(ticket_write(devnull, &t) == 0);
		/* A ticket passed on must read the same at the next stage. */
		w1 = written(&t, &l1);
		f = fmemopen(w1, l1, "r");
		CHECK(f != NULL);
		r = ticket_read(f, &t2, err, sizeof(err));
		fclose(f);
		if (r != 1)
			fprintf(fuzz_err, "re-read: %d %s\n", r, err);
		CHECK(r == 1);
		w2 = written(&t2, &l2);
		CHECK(l1 == l2 && memcmp(w1, w2, l1) == 0);
		/* A stage adds its tried line: still a ticket. */
		ticket_tried(&t2, "fuzz %s", t2.peer);
		ticket_free(&t2);
		free(w1);
		free(w2);
	}
	ticket_free(&t);
	return 0;
}
