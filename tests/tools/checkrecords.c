/*
 * checkrecords - verifies a partition written by writer (records.h):
 * every line is an intact record (length, CRC and regenerated payload
 * match), each writer's sequence numbers go up by exactly one from its
 * first (no loss, no duplicate, no reordering), and the file ends with a
 * newline (nothing torn at the end).
 *
 *   checkrecords [options] FILE
 *
 *   -n COUNT     every writer seen has exactly COUNT records
 *   -W N         exactly N writers are seen
 *   -a ID:SEQ    writer ID has every record up to SEQ (repeatable)
 *   -S FIRST     sequence numbers start at FIRST (default 0)
 *   -x           lines that do not start with "R " are counted and
 *                skipped (tests that mix in other lines)
 *   -o OFFSET    start at this byte offset (a record boundary)
 *
 * Prints "records N writers W bytes B foreign F" and a line per writer
 * ("writer ID records N first F last L"); problems go to stderr.  Exits 0
 * when everything holds, 1 otherwise (2 for usage errors).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "records.h"

#define MAX_WRITERS 4096
#define MAX_REPORTS 20

struct wstate {
	unsigned long long count, first, last;
	int seen;
};

static struct wstate ws[MAX_WRITERS];
static int problems;

static void problem(unsigned long long off, const char *fmt, const char *a)
{
	if (problems++ < MAX_REPORTS)
		fprintf(stderr, "checkrecords: at byte %llu: %s%s\n", off, fmt,
			a ? a : "");
}

static void usage(void)
{
	fprintf(stderr, "usage: checkrecords [-n COUNT] [-W N] [-a ID:SEQ]... "
			"[-S FIRST] [-x] [-o OFFSET] FILE\n");
	exit(2);
}

/* Checks one line (with its '\n').  Returns the writer id or -1. */
static long check_line(const char *line, size_t n, unsigned long long off,
		       char **scratch, size_t *scap)
{
	unsigned long long w, seq;
	size_t len;
	unsigned crc;
	int hdr = 0;

	if (sscanf(line, "R %llu %llu %zu %8x %n", &w, &seq, &len, &crc,
		   &hdr) != 4 || hdr == 0) {
		problem(off, "malformed record header", NULL);
		return -1;
	}
	if (len != n) {
		char msg[96];

		snprintf(msg, sizeof(msg), "length %zu, header says %zu", n,
			 len);
		problem(off, msg, NULL);
		return -1;
	}
	if (w >= MAX_WRITERS) {
		problem(off, "writer id out of range", NULL);
		return -1;
	}
	size_t plen = n - (size_t)hdr - 1;
	if (rec_crc(line + hdr, plen) != crc) {
		problem(off, "payload CRC mismatch", NULL);
		return -1;
	}
	if (plen > *scap) {
		*scap = plen * 2;
		*scratch = realloc(*scratch, *scap);
	}
	rec_payload(w, seq, *scratch, plen);
	if (memcmp(*scratch, line + hdr, plen)) {
		problem(off, "payload differs from the generator's", NULL);
		return -1;
	}
	struct wstate *s = &ws[w];
	if (s->seen && seq != s->last + 1) {
		char msg[128];

		snprintf(msg, sizeof(msg),
			 "writer %llu: sequence %llu after %llu", w, seq,
			 s->last);
		problem(off, msg, NULL);
	}
	if (!s->seen) {
		s->seen = 1;
		s->first = seq;
	}
	s->last = seq;
	s->count++;
	return (long)w;
}

int main(int argc, char **argv)
{
	unsigned long long expect_n = 0, first = 0, start = 0;
	long expect_w = -1;
	int have_n = 0, allow_foreign = 0, c;
	struct {
		unsigned long long id, seq;
	} atleast[64];
	int natleast = 0;

	while ((c = getopt(argc, argv, "n:W:a:S:xo:")) != -1) {
		switch (c) {
		case 'n':
			expect_n = strtoull(optarg, NULL, 10);
			have_n = 1;
			break;
		case 'W':
			expect_w = strtol(optarg, NULL, 10);
			break;
		case 'a':
			if (natleast == 64 ||
			    sscanf(optarg, "%llu:%llu", &atleast[natleast].id,
				   &atleast[natleast].seq) != 2)
				usage();
			natleast++;
			break;
		case 'S':
			first = strtoull(optarg, NULL, 10);
			break;
		case 'x':
			allow_foreign = 1;
			break;
		case 'o':
			start = strtoull(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 1)
		usage();
	rec_crc_init();

	FILE *f = fopen(argv[optind], "r");
	if (!f) {
		fprintf(stderr, "checkrecords: %s: %s\n", argv[optind],
			strerror(errno));
		return 1;
	}
	if (start && fseeko(f, (off_t)start, SEEK_SET) < 0) {
		fprintf(stderr, "checkrecords: seek: %s\n", strerror(errno));
		return 1;
	}
	char *line = NULL, *scratch = NULL;
	size_t cap = 0, scap = 0;
	unsigned long long off = start, records = 0, foreign = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] != '\n') {
			problem(off, "torn tail: the file does not end with "
				     "a newline", NULL);
		} else if (strncmp(line, "R ", 2) && allow_foreign) {
			foreign++;
		} else if (check_line(line, (size_t)n, off, &scratch,
				      &scap) >= 0) {
			records++;
		}
		off += (unsigned long long)n;
	}
	if (ferror(f)) {
		fprintf(stderr, "checkrecords: read: %s\n", strerror(errno));
		problems++;
	}
	fclose(f);

	long writers = 0;
	for (int i = 0; i < MAX_WRITERS; i++) {
		if (!ws[i].seen)
			continue;
		writers++;
		printf("writer %d records %llu first %llu last %llu\n", i,
		       ws[i].count, ws[i].first, ws[i].last);
		if (ws[i].first != first) {
			fprintf(stderr, "checkrecords: writer %d starts at "
					"%llu, not %llu\n",
				i, ws[i].first, first);
			problems++;
		}
		if (have_n && ws[i].count != expect_n) {
			fprintf(stderr, "checkrecords: writer %d has %llu "
					"records, expected %llu\n",
				i, ws[i].count, expect_n);
			problems++;
		}
	}
	for (int i = 0; i < natleast; i++) {
		unsigned long long id = atleast[i].id;

		if (id >= MAX_WRITERS || !ws[id].seen ||
		    ws[id].last < atleast[i].seq) {
			fprintf(stderr, "checkrecords: writer %llu: records up "
					"to %llu must be there, last is %s%llu\n",
				id, atleast[i].seq,
				id < MAX_WRITERS && ws[id].seen ? "" : "none ",
				id < MAX_WRITERS ? ws[id].last : 0);
			problems++;
		}
	}
	if (expect_w >= 0 && writers != expect_w) {
		fprintf(stderr, "checkrecords: %ld writers, expected %ld\n",
			writers, expect_w);
		problems++;
	}
	printf("records %llu writers %ld bytes %llu foreign %llu\n", records,
	       writers, off - start, foreign);
	free(line);
	free(scratch);
	if (problems)
		fprintf(stderr, "checkrecords: %d problem(s)\n", problems);
	return problems ? 1 : 0;
}
