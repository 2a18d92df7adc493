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
 *   -g           gaps allowed (writers whose failed writes are not sent
 *                again, writer -a -e): each writer's sequence numbers
 *                must only go up (a repeat is a duplicate, a lower one a
 *                reordering), not by exactly one, nor start at FIRST
 *   -A ID:ACKLOG the acknowledgement log of writer ID (writer -a): every
 *                record of an "ok" line must be in the file (repeatable);
 *                records of "err" lines may be there or not, at most once
 *
 * Prints "records N writers W bytes B foreign F" and a line per writer
 * ("writer ID records N first F last L"), and per acknowledgement log
 * "acked ID ok N failed F failed-present P"; problems go to stderr.
 * Exits 0 when everything holds, 1 otherwise (2 for usage errors).
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
	/* With -A: every sequence number seen, in file order (ascending
	 * when the file is right), for the acknowledgement check. */
	unsigned long long *seqs;
	size_t nseqs, cap;
	int keep;
};

static struct wstate ws[MAX_WRITERS];
static int problems;
static int gaps;

static void keep_seq(struct wstate *s, unsigned long long seq)
{
	if (s->nseqs == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->seqs = realloc(s->seqs, s->cap * sizeof(*s->seqs));
		if (!s->seqs) {
			perror("checkrecords: realloc");
			exit(2);
		}
	}
	s->seqs[s->nseqs++] = seq;
}

static int cmp_seq(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a;
	unsigned long long y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

/* How many times seq is in s->seqs, sorted by now. */
static size_t seq_count(const struct wstate *s, unsigned long long seq)
{
	size_t lo = 0, hi = s->nseqs, n = 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->seqs[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo + n < s->nseqs && s->seqs[lo + n] == seq)
		n++;
	return n;
}

/*
 * Checks the acknowledgement log of writer id against what the file
 * holds: every acknowledged record exactly once, every failed one at most
 * once.  Prints the summary line; problems go to stderr.
 */
static void check_acks(unsigned long long id, const char *path)
{
	struct wstate *s = &ws[id];
	unsigned long long a, b, ok = 0, failed = 0, failed_present = 0;
	unsigned long long missing = 0, doubled = 0;
	char kind[8], line[256];
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, "checkrecords: %s: %s\n", path,
			strerror(errno));
		problems++;
		return;
	}
	qsort(s->seqs, s->nseqs, sizeof(*s->seqs), cmp_seq);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%7s %llu %llu", kind, &a, &b) != 3 || b < a ||
		    (strcmp(kind, "ok") && strcmp(kind, "err"))) {
			fprintf(stderr, "checkrecords: %s: bad line: %s", path,
				line);
			problems++;
			continue;
		}
		for (unsigned long long q = a; q <= b; q++) {
			size_t n = seq_count(s, q);

			if (n > 1 && doubled++ < MAX_REPORTS)
				fprintf(stderr, "checkrecords: writer %llu: "
						"record %llu is there %zu "
						"times\n", id, q, n);
			if (kind[0] == 'o') {
				ok++;
				if (n == 0 && missing++ < MAX_REPORTS)
					fprintf(stderr, "checkrecords: writer "
							"%llu: acknowledged "
							"record %llu is "
							"missing\n", id, q);
			} else {
				failed++;
				failed_present += n > 0;
			}
		}
	}
	fclose(f);
	if (missing || doubled) {
		fprintf(stderr, "checkrecords: writer %llu: %llu acknowledged "
				"record(s) missing, %llu doubled\n",
			id, missing, doubled);
		problems++;
	}
	printf("acked %llu ok %llu failed %llu failed-present %llu\n", id, ok,
	       failed, failed_present);
}

static void problem(unsigned long long off, const char *fmt, const char *a)
{
	if (problems++ < MAX_REPORTS)
		fprintf(stderr, "checkrecords: at byte %llu: %s%s\n", off, fmt,
			a ? a : "");
}

static void usage(void)
{
	fprintf(stderr, "usage: checkrecords [-n COUNT] [-W N] [-a ID:SEQ]... "
			"[-S FIRST] [-x] [-o OFFSET] [-g] [-A ID:ACKLOG]... "
			"FILE\n");
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
	if (gaps && s->seen && seq <= s->last) {
		char msg[128];

		snprintf(msg, sizeof(msg), "writer %llu: sequence %llu after "
			 "%llu (%s)", w, seq, s->last,
			 seq == s->last ? "duplicate" : "out of order");
		problem(off, msg, NULL);
	} else if (!gaps && s->seen && seq != s->last + 1) {
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
	if (s->keep)
		keep_seq(s, seq);
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
	struct {
		unsigned long long id;
		const char *path;
	} acks[64];
	int nacks = 0;

	while ((c = getopt(argc, argv, "n:W:a:S:xo:gA:")) != -1) {
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
		case 'g':
			gaps = 1;
			break;
		case 'A': {
			char *colon = strchr(optarg, ':'), *end;

			if (nacks == 64 || !colon)
				usage();
			acks[nacks].id = strtoull(optarg, &end, 10);
			if (end != colon || acks[nacks].id >= MAX_WRITERS)
				usage();
			acks[nacks].path = colon + 1;
			ws[acks[nacks].id].keep = 1;
			nacks++;
			break;
		}
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
		if (!gaps && ws[i].first != first) {
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
	for (int i = 0; i < nacks; i++)
		check_acks(acks[i].id, acks[i].path);
	if (expect_w >= 0 && writers != expect_w) {
		fprintf(stderr, "checkrecords: %ld writers, expected %ld\n",
			writers, expect_w);
		problems++;
	}
	printf("records %llu writers %ld bytes %llu foreign %llu\n", records,
	       writers, off - start, foreign);
	free(line);
	free(scratch);
	for (int i = 0; i < MAX_WRITERS; i++)
		free(ws[i].seqs);
	if (problems)
		fprintf(stderr, "checkrecords: %d problem(s)\n", problems);
	return problems ? 1 : 0;
}
