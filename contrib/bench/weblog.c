/*
 * weblog.c - a generator of realistic web-server access-log lines, for the
 * compression workload of `make bench` (contrib/bench/compression.sh).
 *
 * Compression ratios depend on the data far more than on the compressor,
 * so the bench needs text that repeats the way a real access log repeats:
 * a few thousand clients doing most of the traffic, a handful of user
 * agents, paths that share prefixes but carry ids and query strings,
 * timestamps that advance, and a random request id on every line that no
 * compressor can shrink.  The stream is a pure function of the seed: the
 * same seed gives the same bytes whatever the size asked for or the write
 * size, so a shorter run is a prefix of a longer one.
 *
 * LINE FORMAT
 *
 * nginx's "combined" format plus the request time and request id many
 * sites add (log_format ... 'rt=$request_time rid=$request_id'):
 *
 *   203.0.113.7 - - [11/Mar/2024:09:00:01 +0000] "GET /products/1234
 *   HTTP/2.0" 200 48213 "https://shop.example.com/" "Mozilla/5.0 (...)"
 *   rt=0.034 rid=5f1c0e...(32 hex digits)
 *
 * (all on one line).
 *
 * THE MODEL
 *
 * 200 concurrent sessions; each line comes from one of them, picked at
 * random.  A session is a client (IP, user agent, HTTP version fixed per
 * client) doing one visit.  A browser loads a landing page with an
 * external referer (none, a search engine, a social site), the page's
 * assets with the page as referer (js, css, font, logo, favicon and
 * product images; on later pages only a few images, and a cached asset
 * revalidated now and then, 304), then the next page with the previous one
 * as referer, for 1 to 13 pages, sometimes posting a form.  Clients come
 * from a pool of 50,000 with Zipf popularity (weight 1/rank), 30% of them
 * inside 40 busy /16 networks, so a few addresses and prefixes recur a
 * lot.  Kinds of client, by share of the pool: desktop and mobile
 * browsers 81%, the shop's mobile app calling the JSON API 12%,
 * search-engine crawlers from their real address ranges 4% (pages only,
 * no referer), scripts (curl, python-requests) 2% (API), and a
 * vulnerability scanner probing /wp-login.php, /.env and friends 1% (all
 * 404).  A load-balancer health check (10.0.x.x, "ELB-HealthChecker/2.0")
 * hits /health every 0.5 s of log time.
 *
 * What comes out for seed 1, 1 GiB (weblog --stats): 3.7 M lines of 290
 * bytes on average, 75 minutes of log time, 30,199 distinct client
 * addresses (the top 10 send 25% of the lines, the top 1000 65%); static
 * assets 64% of the lines, pages 22% (/, /products/ID,
 * /category/NAME?page=N&sort=S, /search?q=TERM&page=N, /cart, /blog/...),
 * API calls 13% (/api/v1/products/ID, ...?category=C&limit=24&offset=N,
 * /api/v1/users/ID/orders?status=S, POST /api/v1/events, ...), other 0.5%;
 * GET 95%, POST 4.3%, PUT, DELETE, OPTIONS, HEAD the rest; status 200 71%,
 * 304 22%, 204 3% (beacons), 201, 3xx, 4xx and 5xx at realistic low rates;
 * user agents: Chrome on Windows 26%, Chrome on Android 21%, Safari on
 * iPhone 15%, the app 11%, Chrome on Mac 9%, Firefox 9%, Edge, Safari on
 * Mac, bots and tools the rest.  Byte counts are fixed per asset and per
 * product image, and vary a few percent around a per-page size for pages;
 * request times are skewed (most fast, a long tail; seconds for 5xx).
 * Time advances by a uniform random gap averaging 1 ms at the daily peak
 * (1000 requests/s), scaled by an hour-of-day curve; the log starts at
 * 2024-03-11 09:00:00 UTC.
 *
 * USAGE
 *
 *   weblog [-S SEED] [-b SIZE] [-w SIZE] [--stats] [FILE...]
 *   weblog --sum FILE...
 *
 * The first form writes whole lines, at most SIZE bytes in all (default
 * 1 GiB; the last line that would pass it is not written), in write()s of
 * whole lines of at most -w bytes (default 128 KiB), to every FILE
 * (opened O_WRONLY|O_APPEND|O_CREAT, each buffer written to each file in
 * turn, so all get the same bytes in the same writes), or to stdout.  On
 * stderr it prints one line: "weblog: lines N bytes B sum HEX seconds S".
 * --stats adds the mix of the lines written.  --sum reads each FILE with
 * 1 MiB reads and prints "FILE bytes B sum HEX", the same checksum (a
 * 64-bit multiply-xor hash over 8-byte words, not cryptographic), so a
 * copy read back through a file system can be checked against what was
 * written.
 *
 * Exit status 0, 1 on an I/O error, 2 on a usage error.  libc only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NCLIENT		50000
#define NSESS		200
#define NNET		40
#define LINE_MAX_BYTES	2048

/* ---- random numbers: xoshiro256**, seeded by splitmix64 */

static uint64_t rs[4];

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rnd_seed(uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		rs[i] = splitmix(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t rnd64(void)
{
	uint64_t r = rotl(rs[1] * 5, 7) * 9, t = rs[1] << 17;

	rs[2] ^= rs[0];
	rs[3] ^= rs[1];
	rs[1] ^= rs[2];
	rs[0] ^= rs[3];
	rs[2] ^= t;
	rs[3] = rotl(rs[3], 45);
	return r;
}

/* Uniform in [0, n), n > 0 (Lemire's multiply-shift; the bias is < 2^-32). */
static inline uint32_t rnd(uint32_t n)
{
	return (uint32_t)(((rnd64() >> 32) * (uint64_t)n) >> 32);
}

static inline bool chance(unsigned per_mille)
{
	return rnd(1000) < per_mille;
}

/* A deterministic hash of an id, for sizes fixed per object. */
static uint32_t idhash(uint64_t x)
{
	return (uint32_t)splitmix(&x);
}

/* ---- weighted choices */

struct pick {
	unsigned weight;
	const char *s;
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static unsigned pick_i(const struct pick *p, size_t n)
{
	unsigned total = 0, r;

	for (size_t i = 0; i < n; i++)
		total += p[i].weight;
	r = rnd(total);
	for (size_t i = 0; i < n; i++) {
		if (r < p[i].weight)
			return (unsigned)i;
		r -= p[i].weight;
	}
	return (unsigned)n - 1;
}

#define PICK(a) pick_i((a), NELEM(a))

/* ---- user agents */

enum ua_kind { UA_BROWSER, UA_APP, UA_CRAWLER, UA_SCRIPT, UA_SCANNER };

struct ua {
	unsigned weight;	/* share of clients, per mille */
	enum ua_kind kind;
	const char *s;
};

static const struct ua uas[] = {
	{ 300, UA_BROWSER,
	  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
	  "(KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36" },
	{ 170, UA_BROWSER,
	  "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 "
	  "(KHTML, like Gecko) Chrome/122.0.0.0 Mobile Safari/537.36" },
	{ 150, UA_BROWSER,
	  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) "
	  "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3.1 "
	  "Mobile/15E148 Safari/604.1" },
	{ 80, UA_BROWSER,
	  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
	  "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 "
	  "Safari/537.36" },
	{ 50, UA_BROWSER,
	  "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) "
	  "Gecko/20100101 Firefox/123.0" },
	{ 40, UA_BROWSER,
	  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
	  "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3.1 "
	  "Safari/605.1.15" },
	{ 40, UA_BROWSER,
	  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
	  "(KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 "
	  "Edg/122.0.2365.80" },
	{ 120, UA_APP, "ShopApp/5.12.1 (iPhone; iOS 17.3.1; Scale/3.00)" },
	{ 30, UA_CRAWLER,
	  "Mozilla/5.0 (compatible; Googlebot/2.1; "
	  "+http://www.google.com/bot.html)" },
	{ 10, UA_CRAWLER,
	  "Mozilla/5.0 (compatible; bingbot/2.0; "
	  "+http://www.bing.com/bingbot.htm)" },
	{ 8, UA_SCRIPT, "python-requests/2.31.0" },
	{ 12, UA_SCRIPT, "curl/7.88.1" },
	{ 10, UA_SCANNER, "Mozilla/5.0 zgrab/0.x" },
};
#define UA_HEALTH "ELB-HealthChecker/2.0"

/* ---- clients */

struct client {
	char ip[16];
	uint8_t iplen;
	uint8_t ua;
	bool h2;
	uint32_t user;		/* account id, 0 when not logged in */
};

static struct client clients[NCLIENT];
static double zipf_cdf[NCLIENT];

static bool public_ip(unsigned a, unsigned b)
{
	return !(a == 0 || a == 10 || a == 127 || a >= 224 ||
		 (a == 169 && b == 254) || (a == 172 && b >= 16 && b < 32) ||
		 (a == 192 && b == 168) || (a == 100 && b >= 64 && b < 128));
}

static void make_clients(void)
{
	unsigned nets[NNET][2];
	double h = 0;

	for (int i = 0; i < NNET; i++) {
		do {
			nets[i][0] = 1 + rnd(223);
			nets[i][1] = rnd(256);
		} while (!public_ip(nets[i][0], nets[i][1]));
	}
	for (int i = 0; i < NCLIENT; i++) {
		struct client *c = &clients[i];
		unsigned a, b, x, y;

		unsigned total = 0, r;

		for (size_t k = 0; k < NELEM(uas); k++)
			total += uas[k].weight;
		r = rnd(total);
		for (c->ua = 0; r >= uas[c->ua].weight; c->ua++)
			r -= uas[c->ua].weight;
		x = rnd(256);
		y = 1 + rnd(254);
		if (uas[c->ua].kind == UA_CRAWLER && c->ua == 8) {
			a = 66;			/* Googlebot's range */
			b = 249;
			x = 64 + rnd(16);
		} else if (uas[c->ua].kind == UA_CRAWLER) {
			a = 40;			/* bingbot's */
			b = 77;
			x = 167;
		} else if (chance(300)) {
			unsigned n = rnd(NNET);

			a = nets[n][0];
			b = nets[n][1];
		} else {
			do {
				a = 1 + rnd(223);
				b = rnd(256);
			} while (!public_ip(a, b));
		}
		c->iplen = (uint8_t)snprintf(c->ip, sizeof(c->ip),
					     "%u.%u.%u.%u", a, b, x, y);
		c->h2 = uas[c->ua].kind == UA_BROWSER && chance(850);
		c->user = chance(350) ? 100000 + rnd(900000) : 0;
		h += 1.0 / (i + 1);
		zipf_cdf[i] = h;
	}
	for (int i = 0; i < NCLIENT; i++)
		zipf_cdf[i] /= h;
}

static unsigned zipf_client(void)
{
	double u = (double)(rnd64() >> 11) / 9007199254740992.0;
	unsigned lo = 0, hi = NCLIENT - 1;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (zipf_cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- the output line */

struct line {
	char *p;		/* next byte */
};

static inline void put(struct line *l, const char *s, size_t n)
{
	memcpy(l->p, s, n);
	l->p += n;
}

static inline void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

static inline void putc_(struct line *l, char c)
{
	*l->p++ = c;
}

static void putu(struct line *l, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*l->p++ = tmp[--n];
}

/* ---- what is requested */

static const char *const categories[] = {
	"shoes", "jackets", "t-shirts", "jeans", "bags", "watches",
	"sunglasses", "hats", "socks", "dresses", "kids", "sale",
};
static const char *const sorts[] = { "popular", "price_asc", "price_desc",
				      "newest", "rating" };
static const char *const terms[] = {
	"running+shoes", "winter+jacket", "black+jeans", "leather+bag",
	"red+dress", "sneakers", "rain+coat", "gift+card", "linen+shirt",
	"smart+watch", "hiking+boots", "wool+socks", "sunglasses+polarized",
	"backpack", "swimwear", "kids+shoes", "sale", "trainers+size+44",
	"denim+jacket", "yoga+pants",
};
static const char *const order_states[] = { "open", "shipped", "all" };

struct asset {
	const char *path;
	unsigned bytes;
};

static const struct asset page_assets[] = {
	{ "/static/js/app.3f9c2a71.js", 284311 },
	{ "/static/js/vendor.b81e04d2.js", 812044 },
	{ "/static/css/main.7d2e9f10.css", 58219 },
	{ "/static/fonts/inter-var.woff2", 47512 },
	{ "/static/img/logo.svg", 6301 },
	{ "/favicon.ico", 15086 },
};

static const struct pick refs_ext[] = {
	{ 400, "-" },
	{ 330, "https://www.google.com/" },
	{ 60, "https://www.bing.com/" },
	{ 30, "https://duckduckgo.com/" },
	{ 60, "https://www.facebook.com/" },
	{ 40, "https://www.instagram.com/" },
	{ 30, "https://t.co/" },
	{ 50, "android-app://com.google.android.gm/" },
};

#define SITE "https://shop.example.com"

struct session {
	int client;		/* -1: free */
	int pages_left;
	int assets_left;
	int asset_pos;
	uint32_t product;	/* product of the current page, 0 if none */
	char page[256];		/* the current page's URL: referer */
	char prev[256];		/* the referer of the current page */
};

static struct session sess[NSESS];

/* The request: what one line says. */
struct req {
	const char *method;
	char path[256];
	unsigned status;
	uint64_t bytes;
	const char *referer;
	unsigned ms;		/* request time in ms */
	int kind;		/* K_* for --stats */
};

enum { K_ASSET, K_PAGE, K_API, K_OTHER, K_NKIND };
static const char *const kind_names[] = { "asset", "page", "api", "other" };

static uint32_t product_id(void)
{
	/* A long tail: a quarter of views go to 200 bestsellers. */
	if (chance(250))
		return 10000 + rnd(200);
	return 10000 + rnd(rnd(190000) + 1);
}

static unsigned page_status(void)
{
	static const struct pick st[] = {
		{ 9300, "200" }, { 150, "301" }, { 150, "302" }, { 300, "404" },
		{ 30, "499" }, { 50, "500" }, { 20, "502" },
	};
	return (unsigned)atoi(st[PICK(st)].s);
}

/* Bytes of an error or redirect body as nginx and the app send them. */
static bool fixed_body(unsigned status, uint64_t *bytes)
{
	switch (status) {
	case 204: case 304: case 499: *bytes = 0; return true;
	case 301: *bytes = 162; return true;
	case 302: *bytes = 138; return true;
	case 400: *bytes = 87; return true;
	case 401: *bytes = 61; return true;
	case 404: *bytes = 3921; return true;
	case 429: *bytes = 55; return true;
	case 500: *bytes = 177; return true;
	case 502: *bytes = 157; return true;
	case 503: *bytes = 190; return true;
	}
	return false;
}

static unsigned slow_ms(unsigned lo, unsigned span)
{
	/* Skewed: most requests fast, a tail up to lo + span. */
	uint64_t u = rnd(1000);

	return lo + (unsigned)(u * u * u * span / 1000000000ULL);
}

static void new_page(struct session *s, struct req *r, bool crawler)
{
	unsigned which = rnd(1000);
	char *p = r->path;

	r->kind = K_PAGE;
	s->product = 0;
	if (which < 120) {
		strcpy(p, "/");
	} else if (which < 560) {
		s->product = product_id();
		p += sprintf(p, "/products/%" PRIu32, s->product);
		if (!crawler && chance(200))
			sprintf(p, "?utm_source=%s&utm_medium=cpc",
				chance(700) ? "google" : "facebook");
	} else if (which < 760) {
		unsigned pg = chance(600) ? 1 : 2 + rnd(rnd(30) + 1);

		sprintf(p, "/category/%s?page=%u&sort=%s",
			categories[rnd(NELEM(categories))], pg,
			sorts[rnd(NELEM(sorts))]);
	} else if (which < 880) {
		sprintf(p, "/search?q=%s&page=%u", terms[rnd(NELEM(terms))],
			chance(800) ? 1 : 2 + rnd(5));
	} else if (which < 930) {
		strcpy(p, crawler ? "/robots.txt" : "/cart");
	} else if (which < 960) {
		strcpy(p, crawler ? "/sitemap.xml" : "/checkout");
	} else if (which < 980) {
		sprintf(p, "/blog/%u-%s", 100 + rnd(400),
			terms[rnd(NELEM(terms))]);
		for (char *q = p; *q; q++)
			if (*q == '+')
				*q = '-';
	} else {
		strcpy(p, "/account/orders");
	}
	r->method = "GET";
	r->status = page_status();
	if (!fixed_body(r->status, &r->bytes)) {
		uint32_t h = idhash(s->product ? s->product : which / 40 + 7);

		r->bytes = 18000 + h % 42000;
		r->bytes += r->bytes * rnd(60) / 1000;	/* dynamic part */
	}
	r->ms = r->status >= 500 ? 800 + rnd(29000) : slow_ms(8, 600);
	/* On a visit's first page prev keeps the external referer. */
	if (s->page[0])
		snprintf(s->prev, sizeof(s->prev), "%s", s->page);
	snprintf(s->page, sizeof(s->page), SITE "%s", r->path);
}

static void asset(struct session *s, struct req *r, bool first_page)
{
	char *p = r->path;

	r->kind = K_ASSET;
	r->method = "GET";
	r->referer = s->page;
	r->ms = rnd(3);
	/* Later pages revalidate a cached asset now and then, and otherwise
	 * do not ask for it at all. */
	while (!first_page && (size_t)s->asset_pos < NELEM(page_assets) &&
	       !chance(100))
		s->asset_pos++;
	if ((size_t)s->asset_pos < NELEM(page_assets)) {
		const struct asset *a = &page_assets[s->asset_pos];

		strcpy(p, a->path);
		/* Cached after the first page of a visit. */
		r->status = first_page && chance(700) ? 200 : 304;
		r->bytes = r->status == 200 ? a->bytes : 0;
	} else {
		uint32_t id = s->product && chance(600) ? s->product
							: product_id();
		static const char *const sz[] = { "400x400", "800x800",
						  "160x160" };
		unsigned z = rnd(3);

		sprintf(p, "/img/products/%" PRIu32 "/%s.webp", id, sz[z]);
		r->status = chance(250) ? 304 : (chance(5) ? 404 : 200);
		if (!fixed_body(r->status, &r->bytes))
			r->bytes = (8000u << z) +
				   idhash(id * 4 + z) % (40000u << z);
	}
	s->asset_pos++;
}

static void api(struct session *s, struct client *c, struct req *r)
{
	unsigned which = rnd(1000);
	char *p = r->path;

	r->kind = K_API;
	r->method = "GET";
	r->referer = "-";
	r->ms = slow_ms(2, 150);
	r->status = 200;
	if (which < 250) {
		s->product = product_id();
		sprintf(p, "/api/v1/products/%" PRIu32, s->product);
		r->bytes = 1200 + idhash(s->product) % 2400;
	} else if (which < 420) {
		sprintf(p, "/api/v1/products?category=%s&limit=24&offset=%u",
			categories[rnd(NELEM(categories))],
			24 * rnd(rnd(20) + 1));
		r->bytes = 9000 + rnd(3000);
	} else if (which < 640) {
		r->method = "POST";
		strcpy(p, "/api/v1/events");
		r->status = 204;
		r->ms = rnd(4);
	} else if (which < 740) {
		strcpy(p, "/api/v1/cart");
		r->bytes = 180 + rnd(2000);
	} else if (which < 800) {
		r->method = "POST";
		strcpy(p, "/api/v1/cart/items");
		r->status = chance(950) ? 201 : 400;
		r->bytes = 310 + rnd(40);
	} else if (which < 830) {
		r->method = chance(500) ? "PUT" : "DELETE";
		sprintf(p, "/api/v1/cart/items/%u", 1 + rnd(30));
		r->bytes = 180 + rnd(1500);
	} else if (which < 900) {
		sprintf(p, "/api/v1/users/%" PRIu32 "/orders?status=%s",
			c->user ? c->user : 100000 + rnd(900000),
			order_states[rnd(3)]);
		r->status = c->user ? 200 : 401;
		r->bytes = 400 + rnd(6000);
	} else if (which < 960) {
		sprintf(p, "/api/v2/recommendations?product_id=%" PRIu32
			"&n=12", s->product ? s->product : product_id());
		r->bytes = 4000 + rnd(1500);
		r->ms = slow_ms(20, 300);
	} else if (which < 990) {
		sprintf(p, "/api/v1/stock/%" PRIu32, product_id());
		r->bytes = 60 + rnd(20);
	} else {
		r->method = "OPTIONS";
		strcpy(p, "/api/v1/events");
		r->status = 204;
		r->ms = 0;
	}
	if (r->status == 200 && !chance(985)) {
		static const struct pick st[] = {
			{ 40, "404" }, { 25, "429" }, { 25, "500" },
			{ 10, "503" },
		};
		r->status = (unsigned)atoi(st[PICK(st)].s);
	}
	if (fixed_body(r->status, &r->bytes) && r->status >= 500)
		r->ms = 1000 + rnd(29000);
}

static void scanner(struct req *r)
{
	static const char *const probes[] = {
		"/wp-login.php", "/.env", "/.git/config", "/admin/config.php",
		"/phpmyadmin/index.php", "/xmlrpc.php", "/cgi-bin/luci",
		"/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
		"/boaform/admin/formLogin", "/actuator/health",
	};

	r->kind = K_OTHER;
	strcpy(r->path, probes[rnd(NELEM(probes))]);
	r->method = chance(850) ? "GET" : "POST";
	r->status = 404;
	r->bytes = 3921;
	r->referer = "-";
	r->ms = rnd(3);
}

/* Makes the next request of session s. */
static struct client *next_request(struct session *s, struct req *r)
{
	struct client *c;
	enum ua_kind kind;

	if (s->client < 0) {
		s->client = (int)zipf_client();
		c = &clients[s->client];
		kind = uas[c->ua].kind;
		s->pages_left = kind == UA_BROWSER ? 1 + rnd(rnd(12) + 1) :
				kind == UA_CRAWLER ? 1 + rnd(30) :
				kind == UA_SCANNER ? 3 + rnd(8) : 5 + rnd(40);
		s->assets_left = 0;
		s->page[0] = '\0';
		s->product = 0;
		snprintf(s->prev, sizeof(s->prev), "%s",
			 kind == UA_BROWSER ? refs_ext[PICK(refs_ext)].s : "-");
	}
	c = &clients[s->client];
	kind = uas[c->ua].kind;
	r->referer = "-";
	switch (kind) {
	case UA_BROWSER:
		if (s->assets_left > 0) {
			/* The first page of a visit came from elsewhere. */
			asset(s, r, strncmp(s->prev, SITE, strlen(SITE)) != 0);
			s->assets_left--;
		} else if (s->page[0] && chance(40)) {
			r->kind = K_PAGE;	/* a form: login, review */
			r->method = "POST";
			strcpy(r->path, chance(500) ? "/login" : "/reviews");
			r->status = chance(800) ? 302 : 401;
			fixed_body(r->status, &r->bytes);
			r->referer = s->page;
			r->ms = slow_ms(20, 400);
			s->pages_left--;
		} else {
			bool first = !s->page[0];

			new_page(s, r, false);
			r->referer = s->prev;
			s->asset_pos = 0;
			s->assets_left = first ? (int)NELEM(page_assets) +
						 (int)rnd(5) : (int)rnd(4);
			s->pages_left--;
		}
		break;
	case UA_CRAWLER:
		new_page(s, r, true);
		if (chance(30)) {
			r->method = "HEAD";
			r->bytes = 0;
		}
		s->pages_left--;
		break;
	case UA_APP:
	case UA_SCRIPT:
		api(s, c, r);
		s->pages_left--;
		break;
	case UA_SCANNER:
		scanner(r);
		s->pages_left--;
		break;
	}
	if (s->pages_left <= 0 && s->assets_left <= 0)
		s->client = -1;
	return c;
}

/* ---- time */

/* Requests per hour of day, relative (a shop in one time zone). */
static const unsigned char diurnal[24] = {
	30, 20, 14, 10, 10, 14, 25, 45, 65, 80, 88, 95,
	100, 98, 92, 90, 92, 96, 100, 100, 92, 80, 62, 44,
};

static uint64_t now_us = 1710147600ULL * 1000000;	/* 2024-03-11 09:00 */
static uint64_t next_health_us;
static char stamp[40];
static size_t stamplen;
static uint64_t stamp_sec;

static void advance(void)
{
	unsigned hour = (unsigned)(now_us / 3600000000ULL % 24);
	/* Mean gap in microseconds: 1000 requests/s at the peak. */
	uint64_t mean = 1000ULL * 100 / diurnal[hour];

	now_us += rnd((uint32_t)(2 * mean + 1));
	if (now_us / 1000000 != stamp_sec) {
		static const char *const mon[] = {
			"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
			"Aug", "Sep", "Oct", "Nov", "Dec",
		};
		time_t t;
		struct tm tm;

		stamp_sec = now_us / 1000000;
		t = (time_t)stamp_sec;
		gmtime_r(&t, &tm);
		stamplen = (size_t)snprintf(
			stamp, sizeof(stamp),
			"[%02d/%s/%04d:%02d:%02d:%02d +0000]", tm.tm_mday,
			mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
			tm.tm_min, tm.tm_sec);
	}
}

/* ---- one line */

struct stats {
	uint64_t lines, kind[K_NKIND], status[600], ua[NELEM(uas) + 1];
	uint64_t method[8], bytes;
};

static struct stats st;
static const char *const methods[] = { "GET", "POST", "HEAD", "PUT",
				       "DELETE", "OPTIONS" };

/* What the last line was, counted by main() if it is written. */
static struct {
	int kind;
	unsigned status, ua;
	const char *method;
} last;

static void count_last(size_t n)
{
	st.lines++;
	st.bytes += n;
	st.kind[last.kind]++;
	st.status[last.status < 600 ? last.status : 0]++;
	st.ua[last.ua]++;
	for (unsigned m = 0; m < NELEM(methods); m++)
		if (!strcmp(last.method, methods[m]))
			st.method[m]++;
}

/* Writes one line at out; returns its length. */
static size_t make_line(char *out)
{
	static const char hex[] = "0123456789abcdef";
	struct line l = { out };
	struct req r;
	struct client *c, health;
	unsigned uai;

	advance();
	memset(&r, 0, sizeof(r));
	if (now_us >= next_health_us) {
		next_health_us = now_us + 500000;
		c = &health;
		health.iplen = (uint8_t)snprintf(health.ip, sizeof(health.ip),
						 "10.0.%u.%u", rnd(2),
						 10 + rnd(3));
		health.h2 = false;
		uai = NELEM(uas);
		r.kind = K_OTHER;
		r.method = "GET";
		strcpy(r.path, "/health");
		r.status = 200;
		r.bytes = 2;
		r.referer = "-";
		r.ms = 0;
	} else {
		c = next_request(&sess[rnd(NSESS)], &r);
		uai = c->ua;
	}

	put(&l, c->ip, c->iplen);
	put(&l, " - - ", 5);
	put(&l, stamp, stamplen);
	put(&l, " \"", 2);
	puts_(&l, r.method);
	putc_(&l, ' ');
	puts_(&l, r.path);
	if (c->h2)
		put(&l, " HTTP/2.0\" ", 11);
	else
		put(&l, " HTTP/1.1\" ", 11);
	putu(&l, r.status);
	putc_(&l, ' ');
	putu(&l, r.bytes);
	put(&l, " \"", 2);
	puts_(&l, r.referer);
	put(&l, "\" \"", 3);
	puts_(&l, uai < NELEM(uas) ? uas[uai].s : UA_HEALTH);
	put(&l, "\" rt=", 5);
	putu(&l, r.ms / 1000);
	putc_(&l, '.');
	putc_(&l, (char)('0' + r.ms / 100 % 10));
	putc_(&l, (char)('0' + r.ms / 10 % 10));
	putc_(&l, (char)('0' + r.ms % 10));
	put(&l, " rid=", 5);
	for (int i = 0; i < 2; i++) {
		uint64_t v = rnd64();

		for (int k = 0; k < 16; k++, v >>= 4)
			*l.p++ = hex[v & 15];
	}
	putc_(&l, '\n');

	last.kind = r.kind;
	last.status = r.status;
	last.ua = uai;
	last.method = r.method;
	return (size_t)(l.p - out);
}

/* ---- checksum */

struct sum {
	uint64_t h, len;
	unsigned char tail[8];
	unsigned ntail;
};

static inline uint64_t mix(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

static void sum_update(struct sum *s, const unsigned char *p, size_t n)
{
	s->len += n;
	while (s->ntail && n) {
		s->tail[s->ntail++] = *p++;
		n--;
		if (s->ntail == 8) {
			uint64_t w;

			memcpy(&w, s->tail, 8);
			s->h = mix(s->h, w);
			s->ntail = 0;
		}
	}
	for (; n >= 8; p += 8, n -= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		s->h = mix(s->h, w);
	}
	memcpy(s->tail, p, n);
	s->ntail = (unsigned)n;
}

static uint64_t sum_final(const struct sum *s)
{
	uint64_t w = 0, h;

	memcpy(&w, s->tail, s->ntail);
	h = mix(mix(s->h, w), s->len);
	return mix(h, 0x5157);
}

/* ---- main */

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'G': case 'g': v <<= 30; end++; break;
	}
	if (!strcmp(end, "iB") || !strcmp(end, "B"))
		end += strlen(end);
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int write_all(int fd, const char *p, size_t n, const char *name)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "weblog: write %s: %s\n", name,
				w < 0 ? strerror(errno) : "wrote nothing");
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int do_sum(int argc, char **argv)
{
	size_t bufsz = 1 << 20;
	unsigned char *buf = malloc(bufsz);
	int rc = 0;

	if (!buf)
		return 1;
	for (int i = 0; i < argc; i++) {
		struct sum s = { 0 };
		int fd = open(argv[i], O_RDONLY);
		ssize_t n;

		if (fd < 0) {
			fprintf(stderr, "weblog: %s: %s\n", argv[i],
				strerror(errno));
			rc = 1;
			continue;
		}
		while ((n = read(fd, buf, bufsz)) > 0 ||
		       (n < 0 && errno == EINTR))
			if (n > 0)
				sum_update(&s, buf, (size_t)n);
		if (n < 0) {
			fprintf(stderr, "weblog: read %s: %s\n", argv[i],
				strerror(errno));
			rc = 1;
		} else {
			printf("%s bytes %" PRIu64 " sum %016" PRIx64 "\n",
			       argv[i], s.len, sum_final(&s));
		}
		close(fd);
	}
	free(buf);
	return rc;
}

static void print_stats(void)
{
	double n = st.lines ? (double)st.lines : 1;

	fprintf(stderr, "weblog: %" PRIu64 " lines, %.1f bytes per line\n",
		st.lines, st.bytes / n);
	fprintf(stderr, "weblog: kind:");
	for (int k = 0; k < K_NKIND; k++)
		fprintf(stderr, " %s %.1f%%", kind_names[k],
			100.0 * st.kind[k] / n);
	fprintf(stderr, "\nweblog: method:");
	for (unsigned m = 0; m < NELEM(methods); m++)
		fprintf(stderr, " %s %.2f%%", methods[m],
			100.0 * st.method[m] / n);
	fprintf(stderr, "\nweblog: status:");
	for (int s = 0; s < 600; s++)
		if (st.status[s])
			fprintf(stderr, " %d %.2f%%", s,
				100.0 * st.status[s] / n);
	fprintf(stderr, "\nweblog: user agents:\n");
	for (unsigned u = 0; u <= NELEM(uas); u++)
		fprintf(stderr, "  %5.2f%% %.60s\n", 100.0 * st.ua[u] / n,
			u < NELEM(uas) ? uas[u].s : UA_HEALTH);
}

static bool opt(const char *a, const char *short_name, const char *long_name)
{
	return !strcmp(a, short_name) || !strcmp(a, long_name);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: weblog [-S SEED] [-b SIZE] [-w SIZE] [--stats] "
		"[FILE...]\n"
		"       weblog --sum FILE...\n"
		"Writes realistic web access-log lines (see the top of "
		"contrib/bench/weblog.c).\n");
}

int main(int argc, char **argv)
{
	uint64_t seed = 1, limit = 1ULL << 30, wsize = 128 << 10;
	bool stats = false;
	int i, nfd = 0, *fds = NULL, rc = 0;
	char *buf;
	size_t used = 0;
	struct sum sum = { 0 };
	struct timespec t0, t1;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--sum"))
			return do_sum(argc - i - 1, argv + i + 1);
		if (!strcmp(a, "--stats")) {
			stats = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage();
			return 0;
		} else if (i + 1 < argc && opt(a, "-S", "--seed")) {
			if (parse_size(argv[++i], &seed))
				goto bad;
		} else if (i + 1 < argc && opt(a, "-b", "--bytes")) {
			if (parse_size(argv[++i], &limit))
				goto bad;
		} else if (i + 1 < argc && opt(a, "-w", "--write-size")) {
			if (parse_size(argv[++i], &wsize) ||
			    wsize < LINE_MAX_BYTES || wsize > (64 << 20))
				goto bad;
		} else {
			goto bad;
		}
	}
	nfd = argc - i;
	fds = calloc(nfd ? (size_t)nfd : 1, sizeof(*fds));
	buf = malloc(wsize + LINE_MAX_BYTES);
	if (!fds || !buf)
		return 1;
	for (int k = 0; k < nfd; k++) {
		fds[k] = open(argv[i + k], O_WRONLY | O_APPEND | O_CREAT, 0644);
		if (fds[k] < 0) {
			fprintf(stderr, "weblog: %s: %s\n", argv[i + k],
				strerror(errno));
			return 1;
		}
	}
	if (!nfd) {
		fds[0] = 1;
		nfd = 1;
		argv[i] = "stdout";
	}

	rnd_seed(seed);
	make_clients();
	for (int k = 0; k < NSESS; k++)
		sess[k].client = -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		size_t n = make_line(buf + used);
		bool end = st.bytes + n > limit;

		if (!end) {
			used += n;
			count_last(n);
		}
		if (used && (end || used + LINE_MAX_BYTES > wsize)) {
			sum_update(&sum, (unsigned char *)buf, used);
			for (int k = 0; k < nfd; k++)
				if (write_all(fds[k], buf, used, argv[i + k])) {
					rc = 1;
					goto out;
				}
			used = 0;
		}
		if (end)
			break;
	}
out:
	for (int k = 0; k < nfd; k++)
		if (fds[k] != 1 && close(fds[k])) {
			fprintf(stderr, "weblog: close %s: %s\n", argv[i + k],
				strerror(errno));
			rc = 1;
		}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "weblog: lines %" PRIu64 " bytes %" PRIu64
		" sum %016" PRIx64 " seconds %.3f\n",
		st.lines, st.bytes, sum_final(&sum),
		(double)(t1.tv_sec - t0.tv_sec) +
			(t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (stats)
		print_stats();
	free(buf);
	free(fds);
	return rc;
bad:
	usage();
	return 2;
}
