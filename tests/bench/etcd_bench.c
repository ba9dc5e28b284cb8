/*
 * The etcd driver of make bench: puts of a 100-byte value, the figure set
 * beside raftq's consumer-offset commits (metadata writes through Raft),
 * printed as one JSON line per case (tests/bench/peer_report.h), never
 * asserted. tests/bench/peers.py starts the 3-node cluster and runs this
 * program against it, the leader's URL first.
 *
 *   etcd_put_32         32 puts in flight, each on a connection of its own
 *                       (32 connections), for --seconds; msgs/s and latency.
 *   etcd_put_1_inflight one put at a time on one connection; latency.
 *
 * Why this program: Debian ships no etcd benchmark tool (etcd-server and
 * etcd-client hold etcd and etcdctl only, and etcdctl opens a connection
 * per command). It is written on libcurl's multi interface, as raftq's own
 * HTTP clients are (shared/rq_httpc.c), so both sides pay the same client
 * cost, and it posts to etcd's JSON gateway (POST /v3/kv/put, key and
 * value in base64) over HTTP/1.1 keep-alive. etcd's own clients speak gRPC,
 * which spares etcd the gateway's translation of each request, so these
 * figures understate etcd somewhat; gRPC over libcurl is not an option
 * here, since Debian 12's libcurl 7.88.1 fails every second request on a
 * reused HTTP/2 connection without TLS ("Error in the HTTP2 framing
 * layer", curl issue 10634, fixed in 8.0).
 *
 * Every put goes to the first URL; keys are bench/<case>/<connection>/<n
 * mod 1000>, so the key space stays small while every put is a new
 * revision.
 *
 * Exit status: 0 when every case ran, 1 when a put failed (the log says
 * which and why), 2 on bad arguments.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <nettle/base64.h>

#include "peer_report.h"
#include "rq_log.h"

#define LOG_TAG "etcd_bench"

#define VALUE_SIZE 100
#define KEY_MAX 64
#define MANY 32 /* Puts in flight (and connections) of etcd_put_32. */
/* The largest request body: JSON with both fields in base64. */
#define BODY_MAX                              \
    (64 + BASE64_ENCODE_RAW_LENGTH(KEY_MAX) + \
     BASE64_ENCODE_RAW_LENGTH(VALUE_SIZE))

struct bench {
    CURLM *multi;    /* The case's: connections are not kept between cases. */
    const char *url; /* Borrowed from argv. */
    double seconds;
    struct curl_slist *headers;
    char value[VALUE_SIZE];
};

/* One put in flight at a time on one easy handle (so one connection). */
struct conn {
    struct bench *b;
    const char *name; /* The case's id; borrowed. */
    CURL *easy;
    int id;
    uint64_t seq;
    uint64_t start_ns;
    size_t body_len;
    size_t resp_len;
    char body[BODY_MAX];
    char resp[256]; /* The start of the answer, for the log. */
};

static char *b64(char *p, const char *data, size_t n)
{
    base64_encode_raw(p, n, (const uint8_t *)data);
    return p + BASE64_ENCODE_RAW_LENGTH(n);
}

/* Writes the gateway's JSON for the put of @c's next key into @c->body. */
static void put_body(struct conn *c)
{
    char key[KEY_MAX];
    int kn = snprintf(key, sizeof key, "bench/%s/%02d/%03u", c->name, c->id,
                      (unsigned)(c->seq % 1000));
    char *p = c->body;
    p += sprintf(p, "{\"key\":\"");
    p = b64(p, key, (size_t)kn);
    p += sprintf(p, "\",\"value\":\"");
    p = b64(p, c->b->value, VALUE_SIZE);
    p += sprintf(p, "\"}");
    c->body_len = (size_t)(p - c->body);
}

static size_t on_body(char *data, size_t size, size_t n, void *closure)
{
    struct conn *c = closure;
    size_t len = size * n;
    size_t room = sizeof c->resp - 1 - c->resp_len;
    size_t keep = len < room ? len : room;
    memcpy(c->resp + c->resp_len, data, keep);
    c->resp_len += keep;
    c->resp[c->resp_len] = '\0';
    return len;
}

/* Starts @c's next put; 0, or -1 when libcurl refused it. */
static int conn_start(struct conn *c)
{
    CURLMcode mc;
    put_body(c);
    c->seq++;
    c->resp_len = 0;
    c->resp[0] = '\0';
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)c->body_len);
    c->start_ns = peer_now_ns();
    mc = curl_multi_add_handle(c->b->multi, c->easy);
    if (mc != CURLM_OK) {
        rq_log(RQ_ERROR, "%s: cannot start a put: %s", c->name,
               curl_multi_strerror(mc));
        return -1; /* UNTESTED: ENOMEM only. */
    }
    return 0;
}

/*
 * Whether @c's finished put succeeded; logs why not when @first (the
 * case's first failure: when the cluster is gone, all 32 fail alike).
 */
static bool conn_ok(struct conn *c, CURLcode result, bool first)
{
    long status = 0;
    if (result != CURLE_OK) {
        if (!first) {
            return false;
        }
        rq_log(RQ_ERROR, "%s: put %llu on connection %d failed: %s", c->name,
               (unsigned long long)c->seq, c->id, curl_easy_strerror(result));
        return false;
    }
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 || strstr(c->resp, "\"header\"") == NULL) {
        if (!first) {
            return false;
        }
        rq_log(RQ_ERROR, "%s: put %llu answered %ld: %.100s", c->name,
               (unsigned long long)c->seq, status, c->resp);
        return false;
    }
    return true;
}

static int conn_init(struct conn *c, struct bench *b, const char *name, int id,
                     const char *url)
{
    *c = (struct conn){.b = b, .name = name, .id = id};
    c->easy = curl_easy_init();
    if (c->easy == NULL) {
        return -1; /* UNTESTED: ENOMEM only. */
    }
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, b->headers);
    curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION,
                     (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    return 0;
}

/*
 * Runs @in_flight puts at a time, each connection starting its next put as
 * its last one answers, until --seconds pass; then waits for those in
 * flight. Every put's latency counts.
 */
static int run_puts(struct bench *b, const char *name, int in_flight)
{
    char url[256];
    struct conn *conns = calloc((size_t)in_flight, sizeof *conns);
    struct peer_lat lat = {0};
    struct peer_result r = {.system = "etcd",
                            .name = name,
                            .in_flight = in_flight,
                            .size = VALUE_SIZE,
                            .lat = &lat};
    uint64_t t0, deadline, end;
    long connects = 0;
    int running = 0, active = 0, rv = 0;

    b->multi = curl_multi_init();
    if (conns == NULL || b->multi == NULL) {
        curl_multi_cleanup(b->multi);
        free(conns);
        return -1; /* UNTESTED: ENOMEM only. */
    }
    snprintf(url, sizeof url, "%s/v3/kv/put", b->url);
    /* One connection for each put in flight: none is shared. */
    curl_multi_setopt(b->multi, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
    curl_multi_setopt(b->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)in_flight);
    curl_multi_setopt(b->multi, CURLMOPT_MAXCONNECTS, (long)in_flight);
    t0 = end = peer_now_ns();
    deadline = t0 + (uint64_t)(b->seconds * 1e9);
    for (int i = 0; i < in_flight; i++) {
        if (conn_init(&conns[i], b, name, i, url) != 0 ||
            conn_start(&conns[i]) != 0) {
            rv = -1;
            break;
        }
        active++;
    }
    while (active > 0) {
        CURLMsg *msg;
        int left;
        /* Finished puts are read before polling, so that the next put on
         * the connection starts at once, not after the poll's timeout. */
        CURLMcode mc = curl_multi_perform(b->multi, &running);
        while (mc == CURLM_OK &&
               (msg = curl_multi_info_read(b->multi, &left)) != NULL) {
            struct conn *c = NULL;
            long n = 0;
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &c);
            curl_easy_getinfo(c->easy, CURLINFO_NUM_CONNECTS, &n);
            connects += n;
            end = peer_now_ns();
            bool ok = conn_ok(c, msg->data.result, rv == 0);
            curl_multi_remove_handle(b->multi, c->easy);
            active--;
            if (!ok) {
                rv = -1;
                continue;
            }
            r.n++;
            if (peer_lat_add(&lat, end - c->start_ns) != 0) {
                rv = -1; /* UNTESTED: ENOMEM only. */
            }
            if (rv == 0 && end < deadline) {
                if (conn_start(c) != 0) {
                    rv = -1;
                    continue;
                }
                active++;
            }
        }
        if (mc == CURLM_OK && active > 0) {
            mc = curl_multi_poll(b->multi, NULL, 0, 100, NULL);
        }
        if (mc != CURLM_OK) {
            rq_log(RQ_ERROR, "%s: %s", name, curl_multi_strerror(mc));
            rv = -1; /* UNTESTED: only on libcurl's internal errors. */
            break;
        }
    }
    r.seconds = (double)(end - t0) / 1e9;
    rq_log(RQ_INFO, "%s: %llu puts over %ld connections", name,
           (unsigned long long)r.n, connects);
    if (rv == 0) {
        peer_result_print(&r);
    }
    for (int i = 0; i < in_flight; i++) {
        if (conns[i].easy != NULL) {
            curl_multi_remove_handle(b->multi, conns[i].easy);
            curl_easy_cleanup(conns[i].easy);
        }
    }
    curl_multi_cleanup(b->multi);
    b->multi = NULL;
    free(conns);
    peer_lat_close(&lat);
    return rv;
}

int main(int argc, char **argv)
{
    static const char *const cases[] = {"etcd_put_32", "etcd_put_1_inflight"};
    static const int in_flight[] = {MANY, 1};
    struct bench b = {0};
    struct peer_args args;
    int rv;

    rv = peer_args_parse(argc, argv, "etcd_bench", "http://HOST:PORT", cases, 2,
                         &args);
    if (rv >= 0) {
        return rv;
    }
    rv = 0;
    b.seconds = args.seconds;
    rq_log_init("etcd_bench", RQ_INFO, RQ_LOG_TEXT);
    /* The first URL: the others are the cluster's other members. */
    args.url[strcspn(args.url, ",")] = '\0';
    b.url = args.url;
    memset(b.value, 'x', sizeof b.value);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rq_log(RQ_ERROR, "libcurl did not initialise");
        return 1; /* UNTESTED: ENOMEM only. */
    }
    b.headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (b.headers == NULL) {
        rq_log(RQ_ERROR, "libcurl: out of memory");
        rv = 1; /* UNTESTED: ENOMEM only. */
        goto out;
    }
    for (size_t i = 0; i < 2; i++) {
        if (!peer_list_has(args.only, cases[i])) {
            continue;
        }
        rq_log(RQ_INFO, "%s: running for %.1f s against %s", cases[i],
               b.seconds, b.url);
        if (run_puts(&b, cases[i], in_flight[i]) != 0) {
            rq_log(RQ_ERROR, "%s: failed", cases[i]);
            rv = 1;
            break;
        }
    }
out:
    curl_slist_free_all(b.headers);
    curl_global_cleanup();
    return rv;
}
