/*
 * latency_client: a compiled HTTP/1.1 keep-alive client for measuring gateway latency.
 *
 * A client written in Python would measure itself: one asyncio round trip costs more than the
 * gateway overhead we want to see. This program keeps one persistent connection, sends the same
 * prebuilt request again and again, reads each response completely (Content-Length or chunked,
 * RFC 9112 section 6), and times every round trip with clock_gettime(CLOCK_MONOTONIC).
 *
 *   cc -O2 -o benchmarks/latency_client benchmarks/latency_client.c
 *
 *   latency_client [options] http://127.0.0.1:8080/health
 *     -n N        timed requests (default 10000)
 *     -w N        warm-up requests, not timed (default 500)
 *     -b FILE     POST the contents of FILE (Content-Type: application/json); default GET
 *     -X METHOD   override the method
 *     -H 'K: V'   extra header (repeatable, up to 32); one named Host, User-Agent, Accept or
 *                 Content-Type replaces the client's own (so a captured SDK head is sent as is)
 *     -c N        throughput mode: N connections driven by one epoll loop, closed loop
 *     -t SEC      time limit for warm-up + measurement (default 60); the run stops early and says so
 *     -l LABEL    label of the markdown row (default: the path)
 *     --json      one JSON object instead of the markdown row
 *     --header    print the markdown table header before the row
 *     --samples F write every timed round trip to F, one per line, in µs (for merging rounds)
 *     --first-event  latency mode: stop each timing at the first Server-Sent Event of the body (the
 *                 read that brings its blank line, "\n\n"); the rest of the stream is still read,
 *                 untimed, before the next request. A 2xx answer without an event counts as an error.
 *
 * Every request is bounded: the run stops at N requests or at the time limit, whichever comes
 * first, and a connection that stays silent for 10 s counts as an error. Only 2xx counts as success.
 * Exit status: 0 when the run completed (even with errors, which are reported), 1 when the
 * server could not be reached or no request succeeded, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADERS 32
#define IO_TIMEOUT_S 10

/* ------------------------------------------------------------------------------------------ */
/* options                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    const char *url;
    const char *body_file;
    const char *method;
    const char *label;
    const char *samples_file;
    const char *headers[MAX_HEADERS];
    int n_headers;
    long requests;
    long warmup;
    int connections; /* 0: latency mode (one connection) */
    double time_limit;
    int json;
    int print_header;
    int first_event; /* time to the first SSE event instead of the whole response */
} options;

typedef struct {
    char host[300];
    char port[16];
    char path[2048];
} target;

static void usage(void) {
    fprintf(stderr,
            "usage: latency_client [-n N] [-w N] [-b FILE] [-X METHOD] [-H 'K: V'] [-c N] [-t SEC]\n"
            "                      [-l LABEL] [--json] [--header] [--samples FILE] [--first-event]\n"
            "                      http://HOST:PORT/PATH\n");
    exit(2);
}

static long parse_long(const char *s, const char *what) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0) {
        fprintf(stderr, "latency_client: invalid %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->requests = 10000;
    o->warmup = 500;
    o->time_limit = 60.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--header")) {
            o->print_header = 1;
        } else if (!strcmp(a, "--first-event")) {
            o->first_event = 1;
        } else if (!strcmp(a, "--samples")) {
            if (!next) usage();
            o->samples_file = argv[++i];
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
        } else if (a[0] == '-' && a[1] && !a[2] && strchr("nwbXHctl", a[1])) {
            if (!next) usage();
            i++;
            switch (a[1]) {
            case 'n': o->requests = parse_long(next, "-n"); break;
            case 'w': o->warmup = parse_long(next, "-w"); break;
            case 'b': o->body_file = next; break;
            case 'X': o->method = next; break;
            case 'H':
                if (o->n_headers == MAX_HEADERS) usage();
                o->headers[o->n_headers++] = next;
                break;
            case 'c': o->connections = (int)parse_long(next, "-c"); break;
            case 't': o->time_limit = atof(next); break;
            case 'l': o->label = next; break;
            }
        } else if (a[0] == '-') {
            usage();
        } else {
            o->url = a;
        }
    }
    if (!o->url || o->requests < 1 || o->time_limit <= 0) usage();
    if (o->first_event && o->connections) {
        fprintf(stderr, "latency_client: --first-event is a latency-mode option (no -c)\n");
        exit(2);
    }
}

static void parse_url(const char *url, target *t) {
    const char *p = url;
    if (!strncmp(p, "http://", 7)) p += 7;
    else {
        fprintf(stderr, "latency_client: only http:// URLs are supported: %s\n", url);
        exit(2);
    }
    const char *slash = strchr(p, '/');
    size_t hostport_len = slash ? (size_t)(slash - p) : strlen(p);
    char hostport[300];
    if (hostport_len >= sizeof hostport) usage();
    memcpy(hostport, p, hostport_len);
    hostport[hostport_len] = 0;
    snprintf(t->path, sizeof t->path, "%s", slash ? slash : "/");
    char *colon = strrchr(hostport, ':');
    if (colon) {
        *colon = 0;
        snprintf(t->port, sizeof t->port, "%s", colon + 1);
    } else {
        snprintf(t->port, sizeof t->port, "80");
    }
    snprintf(t->host, sizeof t->host, "%s", hostport);
}

/* ------------------------------------------------------------------------------------------ */
/* the fixed request, built once                                                                */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    char *data;
    size_t len;
} buf;

/* whether one of the -H headers has this (lower-case) name */
static int given(const options *o, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < o->n_headers; i++)
        if (!strncasecmp(o->headers[i], name, n) && o->headers[i][n] == ':') return 1;
    return 0;
}

static buf build_request(const options *o, const target *t) {
    char *body = NULL;
    size_t body_len = 0;
    if (o->body_file) {
        FILE *f = fopen(o->body_file, "rb");
        if (!f) {
            perror(o->body_file);
            exit(2);
        }
        struct stat st;
        fstat(fileno(f), &st);
        body_len = (size_t)st.st_size;
        body = malloc(body_len + 1);
        if (fread(body, 1, body_len, f) != body_len) {
            perror(o->body_file);
            exit(2);
        }
        fclose(f);
    }
    const char *method = o->method ? o->method : (o->body_file ? "POST" : "GET");
    size_t cap = 4096 + body_len;
    for (int i = 0; i < o->n_headers; i++) cap += strlen(o->headers[i]) + 2;
    buf r = {malloc(cap), 0};
    r.len += (size_t)sprintf(r.data + r.len, "%s %s HTTP/1.1\r\n", method, t->path);
    if (!given(o, "host")) r.len += (size_t)sprintf(r.data + r.len, "Host: %s:%s\r\n", t->host, t->port);
    if (!given(o, "user-agent")) r.len += (size_t)sprintf(r.data + r.len, "User-Agent: alloy-latency-client/1\r\n");
    if (!given(o, "accept")) r.len += (size_t)sprintf(r.data + r.len, "Accept: application/json\r\n");
    for (int i = 0; i < o->n_headers; i++) r.len += (size_t)sprintf(r.data + r.len, "%s\r\n", o->headers[i]);
    if (o->body_file) {
        if (!given(o, "content-type"))
            r.len += (size_t)sprintf(r.data + r.len, "Content-Type: application/json\r\n");
        r.len += (size_t)sprintf(r.data + r.len, "Content-Length: %zu\r\n", body_len);
    }
    r.len += (size_t)sprintf(r.data + r.len, "\r\n");
    if (body_len) {
        memcpy(r.data + r.len, body, body_len);
        r.len += body_len;
    }
    free(body);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* incremental response reader (RFC 9112 section 6.3 message body length)                      */
/* ------------------------------------------------------------------------------------------ */

enum { R_HEAD, R_LENGTH, R_CHUNKED, R_UNTIL_CLOSE };

typedef struct {
    int state;
    int status;
    int close;          /* server said Connection: close, or body is close-delimited */
    size_t base;        /* where the current response starts (after skipped 1xx responses) */
    size_t scanned;     /* head search resumes here: never rescans */
    size_t body_start;
    size_t pos;         /* chunked: start of the next chunk-size line */
    long long length;   /* Content-Length */
} reader;

static void reader_reset(reader *r) { memset(r, 0, sizeof *r); }

static int header_is(const char *line, size_t len, const char *name) {
    size_t n = strlen(name);
    return len > n && line[n] == ':' && !strncasecmp(line, name, n);
}

static const char *header_value(const char *line, size_t len, size_t name_len, size_t *vlen) {
    const char *v = line + name_len + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    *vlen = (size_t)(end - v);
    return v;
}

static int contains_token(const char *v, size_t vlen, const char *token) {
    size_t n = strlen(token);
    for (size_t i = 0; i + n <= vlen; i++)
        if (!strncasecmp(v + i, token, n)) return 1;
    return 0;
}

/* Returns the number of bytes of the complete response at the start of data (interim 1xx
 * responses included), 0 while it is incomplete, -1 when the bytes are not HTTP. Positions are
 * kept across calls, so each byte is examined about once. */
static long reader_feed(reader *r, const char *data, size_t len) {
    for (;;) {
        if (r->state == R_HEAD) {
            size_t from = r->scanned > r->base + 3 ? r->scanned - 3 : r->base;
            const char *end = len > from ? memmem(data + from, len - from, "\r\n\r\n", 4) : NULL;
            if (!end) {
                r->scanned = len;
                return len - r->base > 1 << 20 ? -1 : 0;
            }
            const char *head = data + r->base;
            size_t head_len = (size_t)(end - head) + 4;
            if (head_len < 16 || strncmp(head, "HTTP/1.", 7)) return -1;
            r->status = atoi(head + 9);
            r->length = -1;
            int chunked = 0, http10 = head[7] == '0';
            int keep_alive_10 = 0;
            const char *line = (const char *)memchr(head, '\n', head_len) + 1;
            while (line < head + head_len - 2) {
                const char *eol = memchr(line, '\r', (size_t)(head + head_len - line));
                size_t ll = (size_t)(eol - line), vlen;
                if (header_is(line, ll, "content-length")) {
                    r->length = atoll(header_value(line, ll, 14, &vlen));
                } else if (header_is(line, ll, "transfer-encoding")) {
                    const char *v = header_value(line, ll, 17, &vlen);
                    chunked = contains_token(v, vlen, "chunked");
                } else if (header_is(line, ll, "connection")) {
                    const char *v = header_value(line, ll, 10, &vlen);
                    if (contains_token(v, vlen, "close")) r->close = 1;
                    if (contains_token(v, vlen, "keep-alive")) keep_alive_10 = 1;
                }
                line = eol + 2;
            }
            if (http10 && !keep_alive_10) r->close = 1;
            if (r->status >= 100 && r->status < 200) { /* interim response: skip it */
                r->base += head_len;
                r->scanned = r->base;
                r->close = 0;
                continue;
            }
            r->body_start = r->pos = r->base + head_len;
            if (chunked) r->state = R_CHUNKED;
            else if (r->length >= 0) r->state = R_LENGTH;
            else if (r->status == 204 || r->status == 304) {
                r->state = R_LENGTH;
                r->length = 0;
            } else {
                r->state = R_UNTIL_CLOSE;
                r->close = 1;
            }
        }
        if (r->state == R_LENGTH) {
            size_t total = r->body_start + (size_t)r->length;
            return len >= total ? (long)total : 0;
        }
        if (r->state == R_UNTIL_CLOSE) return 0; /* completed by the caller at EOF */
        /* R_CHUNKED: walk chunk by chunk, remembering where we are */
        for (;;) {
            if (r->pos >= len) return 0;
            const char *eol = memmem(data + r->pos, len - r->pos, "\r\n", 2);
            if (!eol) return 0;
            char *hex_end;
            long long size = strtoll(data + r->pos, &hex_end, 16);
            if (hex_end == data + r->pos || size < 0) return -1;
            size_t after = (size_t)(eol - data) + 2;
            if (size == 0) { /* last-chunk, then trailer fields until an empty line */
                if (len >= after + 2 && data[after] == '\r' && data[after + 1] == '\n') return (long)(after + 2);
                const char *t = memmem(data + after, len - after, "\r\n\r\n", 4);
                return t ? (long)((size_t)(t - data) + 4) : 0;
            }
            size_t next = after + (size_t)size + 2;
            if (len < next) return 0;
            r->pos = next;
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* connections                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static struct addrinfo *resolve(const target *t) {
    struct addrinfo hints = {0}, *res;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(t->host, t->port, &hints, &res);
    if (rc) {
        fprintf(stderr, "latency_client: %s:%s: %s\n", t->host, t->port, gai_strerror(rc));
        exit(1);
    }
    return res;
}

static int connect_to(struct addrinfo *ai, int nonblocking) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        return -1;
    }
    if (nonblocking) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct {
    char *data;
    size_t len, cap;
} rbuf;

static void rbuf_reserve(rbuf *b, size_t extra) {
    if (b->cap - b->len >= extra) return;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap - b->len < extra) cap *= 2;
    b->data = realloc(b->data, cap);
    b->cap = cap;
}

static void rbuf_consume(rbuf *b, size_t n) {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* ------------------------------------------------------------------------------------------ */
/* statistics                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    const char *label, *url;
    long count, errors, reconnects;
    int connections;
    double elapsed, min, median, mean, p95, p99, max, stdev, rps;
    int truncated;
} result;

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* nearest-rank percentile of sorted samples, in µs */
static double pct(const uint64_t *s, long n, long p) {
    long rank = (p * n + 99) / 100;
    if (rank < 1) rank = 1;
    return (double)s[rank - 1] / 1000.0;
}

/* Newton's method, so the client builds with a bare `cc -O2` (no -lm) */
static double square_root(double x) {
    if (x <= 0) return 0;
    double g = x > 1 ? x : 1;
    for (int i = 0; i < 64; i++) g = 0.5 * (g + x / g);
    return g;
}

static const char *samples_file;

static void summarise(result *r, uint64_t *samples, long n) {
    r->count = n;
    if (n == 0) return;
    qsort(samples, (size_t)n, sizeof *samples, cmp_u64);
    if (samples_file) {
        FILE *f = fopen(samples_file, "w");
        if (!f) {
            perror(samples_file);
        } else {
            for (long i = 0; i < n; i++) fprintf(f, "%.3f\n", (double)samples[i] / 1000.0);
            fclose(f);
        }
    }
    double sum = 0, sq = 0;
    for (long i = 0; i < n; i++) sum += (double)samples[i] / 1000.0;
    r->mean = sum / (double)n;
    for (long i = 0; i < n; i++) {
        double d = (double)samples[i] / 1000.0 - r->mean;
        sq += d * d;
    }
    r->stdev = n > 1 ? square_root(sq / (double)(n - 1)) : 0;
    r->min = (double)samples[0] / 1000.0;
    r->max = (double)samples[n - 1] / 1000.0;
    r->median = pct(samples, n, 50);
    r->p95 = pct(samples, n, 95);
    r->p99 = pct(samples, n, 99);
    r->rps = r->elapsed > 0 ? (double)n / r->elapsed : 0;
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

static void print_result(const options *o, const result *r) {
    if (o->json) {
        printf("{\"label\": ");
        json_string(r->label);
        printf(", \"url\": ");
        json_string(r->url);
        printf(", \"mode\": \"%s\", \"connections\": %d, \"requests\": %ld, \"errors\": %ld, "
               "\"reconnects\": %ld, \"elapsed_s\": %.6f, \"truncated\": %s, \"min_us\": %.2f, "
               "\"median_us\": %.2f, \"mean_us\": %.2f, \"p95_us\": %.2f, \"p99_us\": %.2f, "
               "\"max_us\": %.2f, \"stdev_us\": %.2f, \"rps\": %.1f}\n",
               o->connections ? "throughput" : o->first_event ? "first-event" : "latency", r->connections, r->count, r->errors,
               r->reconnects, r->elapsed, r->truncated ? "true" : "false", r->min, r->median, r->mean,
               r->p95, r->p99, r->max, r->stdev, r->rps);
        return;
    }
    if (o->print_header) {
        printf("| Target | Min (µs) | Median (µs) | Mean (µs) | P95 (µs) | P99 (µs) | Max (µs) | Throughput (req/s) |\n");
        printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    }
    printf("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f |\n", r->label, r->min, r->median, r->mean,
           r->p95, r->p99, r->max, r->rps);
}

/* ------------------------------------------------------------------------------------------ */
/* latency mode: one connection, one request at a time                                          */
/* ------------------------------------------------------------------------------------------ */

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* one round trip; returns the status, or -1 on a connection error. *close_after is set when the
 * server will not reuse the connection. With first_at, it receives the time of the read that
 * completed the body's first Server-Sent Event (0 when the body has none). */
static int round_trip(int fd, const buf *req, rbuf *in, int *close_after, uint64_t *first_at) {
    reader rd;
    reader_reset(&rd);
    size_t event_scan = 0; /* first_at: where the search for "\n\n" resumes */
    uint64_t read_at = 0;
    if (first_at) *first_at = 0;
    if (write_all(fd, req->data, req->len) < 0) return -1;
    for (;;) {
        long done = in->len ? reader_feed(&rd, in->data, in->len) : 0;
        if (done < 0) return -1;
        if (first_at && !*first_at && rd.state != R_HEAD) {
            /* the raw body: a chunk-size line is "\r\n"-terminated, so "\n\n" is an event's end */
            size_t end = done > 0 ? (size_t)done : in->len;
            size_t from = event_scan > rd.body_start + 1 ? event_scan - 1 : rd.body_start;
            if (end > from && memmem(in->data + from, end - from, "\n\n", 2)) *first_at = read_at ? read_at : now_ns();
            event_scan = end;
        }
        if (done > 0) {
            rbuf_consume(in, (size_t)done);
            *close_after = rd.close;
            return rd.status;
        }
        rbuf_reserve(in, 65536);
        ssize_t got = read(fd, in->data + in->len, in->cap - in->len);
        if (first_at) read_at = now_ns();
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            if (got == 0 && rd.state == R_UNTIL_CLOSE) {
                in->len = 0;
                *close_after = 1;
                return rd.status;
            }
            return -1;
        }
        in->len += (size_t)got;
    }
}

static int run_latency(const options *o, const target *t, const buf *req, result *r) {
    struct addrinfo *ai = resolve(t);
    int fd = connect_to(ai, 0);
    if (fd < 0) {
        fprintf(stderr, "latency_client: connect %s:%s: %s\n", t->host, t->port, strerror(errno));
        return 1;
    }
    uint64_t *samples = malloc(sizeof(uint64_t) * (size_t)o->requests);
    rbuf in = {0};
    double deadline = now_s() + o->time_limit;
    long total = o->warmup + o->requests, n = 0, ok = 0;
    double start = 0;
    for (long i = 0; i < total; i++) {
        if (i == o->warmup) start = now_s();
        if ((i & 63) == 0 && now_s() > deadline) {
            r->truncated = 1;
            break;
        }
        int close_after = 0;
        uint64_t first_at = 0;
        uint64_t t0 = now_ns();
        int status = round_trip(fd, req, &in, &close_after, o->first_event ? &first_at : NULL);
        uint64_t t1 = now_ns();
        int no_event = o->first_event && status >= 200 && status < 300 && !first_at;
        if (i >= o->warmup) samples[n++] = (o->first_event && first_at ? first_at : t1) - t0;
        if (status >= 200 && status < 300 && !no_event) ok++;
        else {
            if (i >= o->warmup) r->errors++;
            if (r->errors == 1 && i >= o->warmup) {
                if (no_event) fprintf(stderr, "latency_client: %s: a %d answer without an event (--first-event)\n", t->path, status);
                else fprintf(stderr, "latency_client: %s: status %d\n", t->path, status);
            }
        }
        if (status < 0 || close_after) {
            close(fd);
            in.len = 0;
            r->reconnects++;
            fd = connect_to(ai, 0);
            if (fd < 0) {
                fprintf(stderr, "latency_client: reconnect failed: %s\n", strerror(errno));
                r->truncated = 1;
                break;
            }
        }
    }
    r->elapsed = start ? now_s() - start : 0;
    r->connections = 1;
    summarise(r, samples, n);
    if (fd >= 0) close(fd);
    free(samples);
    free(in.data);
    freeaddrinfo(ai);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------------------------------ */
/* throughput mode: N connections, one epoll loop, each connection in a closed loop             */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    int fd;
    size_t written;
    uint64_t sent_at;
    reader rd;
    rbuf in;
} conn;

static int conn_open(conn *c, struct addrinfo *ai, int ep, int idx) {
    c->fd = connect_to(ai, 1);
    if (c->fd < 0) return -1;
    c->in.len = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)idx};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void conn_start(conn *c, const buf *req, int ep, int idx) {
    c->written = 0;
    c->sent_at = now_ns();
    reader_reset(&c->rd);
    ssize_t w = write(c->fd, req->data, req->len);
    if (w > 0) c->written = (size_t)w;
    struct epoll_event ev = {.events = EPOLLIN | (c->written < req->len ? EPOLLOUT : 0), .data.u32 = (uint32_t)idx};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int run_throughput(const options *o, const target *t, const buf *req, result *r) {
    struct addrinfo *ai = resolve(t);
    int nc = o->connections;
    conn *cs = calloc((size_t)nc, sizeof *cs);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < nc; i++) {
        if (conn_open(&cs[i], ai, ep, i) < 0) {
            fprintf(stderr, "latency_client: connect %d/%d: %s\n", i + 1, nc, strerror(errno));
            return 1;
        }
    }
    uint64_t *samples = malloc(sizeof(uint64_t) * (size_t)o->requests);
    long issued = 0, completed = 0, n = 0, ok = 0;
    long total = o->warmup + o->requests;
    double deadline = now_s() + o->time_limit, start = o->warmup ? 0 : now_s();
    for (int i = 0; i < nc && issued < total; i++, issued++) conn_start(&cs[i], req, ep, i);
    struct epoll_event events[256];
    while (completed < issued) {
        if (now_s() > deadline) {
            r->truncated = 1;
            break;
        }
        int ne = epoll_wait(ep, events, 256, 1000);
        if (ne < 0 && errno != EINTR) break;
        for (int e = 0; e < ne; e++) {
            int idx = (int)events[e].data.u32;
            conn *c = &cs[idx];
            if (c->written < req->len && (events[e].events & EPOLLOUT)) {
                ssize_t w = write(c->fd, req->data + c->written, req->len - c->written);
                if (w > 0) c->written += (size_t)w;
                if (c->written == req->len) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)idx};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (!(events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            int status = 0, finished = 0, broken = 0;
            for (;;) {
                rbuf_reserve(&c->in, 65536);
                ssize_t got = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
                if (got < 0 && (errno == EAGAIN || errno == EINTR)) break;
                if (got <= 0) {
                    if (got == 0 && c->rd.state == R_UNTIL_CLOSE) {
                        status = c->rd.status;
                        finished = 1;
                    }
                    broken = 1;
                    break;
                }
                c->in.len += (size_t)got;
                long done = reader_feed(&c->rd, c->in.data, c->in.len);
                if (done < 0) {
                    broken = 1;
                    break;
                }
                if (done > 0) {
                    status = c->rd.status;
                    finished = 1;
                    rbuf_consume(&c->in, (size_t)done);
                    if (c->rd.close) broken = 1;
                    break;
                }
            }
            if (!finished && !broken) continue;
            uint64_t elapsed = now_ns() - c->sent_at;
            completed++;
            int success = finished && status >= 200 && status < 300;
            if (success) ok++;
            if (completed > o->warmup) {
                if (n < o->requests) samples[n++] = elapsed;
                if (!success) r->errors++;
            } else if (completed == o->warmup) {
                start = now_s();
            }
            if (broken) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                r->reconnects++;
                if (conn_open(c, ai, ep, idx) < 0) continue;
            }
            if (issued < total) {
                conn_start(c, req, ep, idx);
                issued++;
            }
        }
    }
    r->elapsed = start ? now_s() - start : 0;
    r->connections = nc;
    summarise(r, samples, n);
    for (int i = 0; i < nc; i++) {
        if (cs[i].fd >= 0) close(cs[i].fd);
        free(cs[i].in.data);
    }
    free(cs);
    free(samples);
    close(ep);
    freeaddrinfo(ai);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    options o;
    target t;
    parse_args(argc, argv, &o);
    parse_url(o.url, &t);
    samples_file = o.samples_file;
    buf req = build_request(&o, &t);
    result r = {0};
    r.label = o.label ? o.label : t.path;
    r.url = o.url;
    int rc = o.connections > 0 ? run_throughput(&o, &t, &req, &r) : run_latency(&o, &t, &req, &r);
    if (r.truncated)
        fprintf(stderr, "latency_client: %s: time limit %.0f s reached after %ld timed requests\n", r.label,
                o.time_limit, r.count);
    if (r.errors) fprintf(stderr, "latency_client: %s: %ld of %ld requests failed\n", r.label, r.errors, r.count);
    if (r.count == 0) {
        fprintf(stderr, "latency_client: %s: no request completed\n", r.label);
        return 1;
    }
    print_result(&o, &r);
    free(req.data);
    return rc;
}
