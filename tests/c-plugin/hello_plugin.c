/*
 * A spikard plugin written in C against abi/include/spikard_plugin.h alone:
 * the proof that the ABI is C-compatible. It serves two handlers: `hello`,
 * which answers {"hello":"<name setting>","method":...,"params":...}, and
 * `hang`, which keeps the responder until the host cancels the request (a
 * timeout, a client gone, shutdown) and then answers 503 from `cancel` —
 * which reads the instance, so a `cancel` after `shutdown` freed it shows.
 * `shutdown` answers whatever still hangs, then frees the instance.
 * Two more misbehave on purpose, for the host's crash report: `crash`
 * raises SIGSEGV and `exit` calls exit(3).
 * `stream` (ABI 1.1) streams "one\n", "two\n", "three\n" as three chunks
 * with the trailer x-chunks: 3. It writes from `handle`, which is allowed
 * because stream_write never blocks, and handles SPK_FULL honestly: it asks
 * for the ready callback and continues from there, on a host thread. On a
 * 1.0 host it answers 501.
 *
 * The tests compile it with the system C compiler. Preprocessor flags build
 * the broken variants the host must refuse cleanly:
 *   -DBROKEN_MAGIC, -DBROKEN_MAJOR, -DBROKEN_SMALL_VTABLE, -DBROKEN_INIT,
 *   -DBROKEN_NO_SYMBOL, and -DSLOW_SHUTDOWN_MS=N, whose `shutdown` ignores
 *   its deadline and sleeps N ms (the host must exit without waiting for it),
 *   and -DGRAB_SIGINT, whose `init` installs a SIGINT handler that exits 7
 *   (the host must take SIGINT back, so Ctrl-C still shuts down cleanly)
 * and -DLAYOUT_PROBE adds `spikard_c_layout`, which reports sizeof/offsetof
 * of every struct so the test can compare them with the Rust definitions.
 */
#ifdef SLOW_SHUTDOWN_MS
#define _POSIX_C_SOURCE 199309L
#include <time.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <stdatomic.h>
#include <signal.h>

#include "spikard_plugin.h"

#define HELLO_ID 7
#define HANG_ID 8
#define CRASH_ID 9
#define EXIT_ID 10
#define STREAM_ID 11
#define MAX_HANGING 64

/* A request `hang` holds until it is cancelled. */
typedef struct {
    char request_id[64];
    size_t id_len;
    spk_responder *responder; /* NULL: free slot */
} hanging;

typedef struct {
    const spk_host_api *api;
    spk_host *host;
    char greeting[64];
    atomic_flag lock; /* guards `hanging`: handle and cancel run concurrently */
    hanging hanging[MAX_HANGING];
} hello_ctx;

static void lock(hello_ctx *c) {
    while (atomic_flag_test_and_set_explicit(&c->lock, memory_order_acquire)) {
    }
}

static void unlock(hello_ctx *c) { atomic_flag_clear_explicit(&c->lock, memory_order_release); }

static spk_str str_of(const char *s) {
    spk_str out = {s, strlen(s)};
    return out;
}

#ifdef GRAB_SIGINT
static void grabbed_sigint(int sig) {
    (void)sig;
    _Exit(7);
}
#endif

static int32_t hello_init(const spk_host_api *api, spk_host *host, spk_str settings,
                          void **ctx, spk_error *err) {
    (void)settings;
#ifdef GRAB_SIGINT
    signal(SIGINT, grabbed_sigint);
#endif
#ifdef BROKEN_INIT
    api->set_error(err, str_of("the C plugin refuses to start (BROKEN_INIT)"));
    return SPK_ERR;
#endif
    /* Any 1.x host: its table has at least the 1.0 functions (up to config_dir). */
    if (api->struct_size < offsetof(spk_host_api, config_dir) + sizeof api->config_dir ||
        api->abi_major != SPIKARD_ABI_MAJOR) {
        return SPK_ERR;
    }
    hello_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        api->set_error(err, str_of("out of memory"));
        return SPK_ERR;
    }
    c->api = api;
    c->host = host;
    strcpy(c->greeting, "world");
    atomic_flag_clear(&c->lock);
    api->log(host, SPK_LOG_INFO, str_of("c_plugin"), str_of("hello from C"));
    *ctx = c;
    return SPK_OK;
}

static int32_t hello_bind(void *ctx, const spk_route_binding *b, uint64_t *handler_id,
                          spk_error *err) {
    hello_ctx *c = ctx;
    if (b->handler.len == 5 && memcmp(b->handler.ptr, "hello", 5) == 0) {
        *handler_id = HELLO_ID;
        return SPK_OK;
    }
    if (b->handler.len == 4 && memcmp(b->handler.ptr, "hang", 4) == 0) {
        *handler_id = HANG_ID;
        return SPK_OK;
    }
    if (b->handler.len == 5 && memcmp(b->handler.ptr, "crash", 5) == 0) {
        *handler_id = CRASH_ID;
        return SPK_OK;
    }
    if (b->handler.len == 4 && memcmp(b->handler.ptr, "exit", 4) == 0) {
        *handler_id = EXIT_ID;
        return SPK_OK;
    }
    if (b->handler.len == 6 && memcmp(b->handler.ptr, "stream", 6) == 0) {
        *handler_id = STREAM_ID;
        return SPK_OK;
    }
    c->api->set_error(err, str_of("the C plugin has the handlers `hello`, `hang`, `crash`, `exit` and `stream`"));
    return SPK_ERR;
}

/* Keeps the responder until `cancel` or `shutdown`; 503 when all slots are taken. */
static void hang_handle(hello_ctx *c, const spk_request *req, spk_responder *responder) {
    if (req->request_id.len < sizeof c->hanging[0].request_id) {
        lock(c);
        for (int i = 0; i < MAX_HANGING; i++) {
            if (c->hanging[i].responder == NULL) {
                memcpy(c->hanging[i].request_id, req->request_id.ptr, req->request_id.len);
                c->hanging[i].id_len = req->request_id.len;
                c->hanging[i].responder = responder;
                unlock(c);
                return;
            }
        }
        unlock(c);
    }
    c->api->respond_error(responder, 503, str_of("too many hanging requests"), NULL, 0);
}

static void hello_cancel(void *ctx, spk_str request_id) {
    hello_ctx *c = ctx;
    spk_responder *found = NULL;
    lock(c);
    for (int i = 0; i < MAX_HANGING; i++) {
        hanging *h = &c->hanging[i];
        if (h->responder && h->id_len == request_id.len &&
            memcmp(h->request_id, request_id.ptr, request_id.len) == 0) {
            found = h->responder;
            h->responder = NULL;
            break;
        }
    }
    unlock(c);
    if (found) {
        c->api->log(c->host, SPK_LOG_INFO, str_of("c_plugin"), str_of("hang cancelled"));
        c->api->respond_error(found, 503, str_of("cancelled"), NULL, 0);
    }
}

/* A streamed answer in progress, on the heap so the ready callback can go on with it. */
typedef struct {
    const spk_host_api *api;
    spk_responder *responder;
    size_t next; /* the next chunk to write */
} stream_job;

static const char *const CHUNKS[] = {"one\n", "two\n", "three\n"};
#define N_CHUNKS (sizeof CHUNKS / sizeof CHUNKS[0])

/* Whether the host's table has the 1.1 stream functions. */
static int host_streams(const spk_host_api *api) {
    return api->struct_size >= offsetof(spk_host_api, stream_end) + sizeof api->stream_end &&
           api->stream_start && api->stream_write && api->stream_on_ready && api->stream_end;
}

/* Writes the chunks left, then ends the stream. On SPK_FULL it registers itself as the
 * ready callback and returns, never waiting: the host calls it back from one of its
 * threads (never from inside stream_on_ready) once the stream drains or closes. */
static void stream_pump(void *user) {
    stream_job *job = user;
    while (job->next < N_CHUNKS) {
        const char *text = CHUNKS[job->next];
        spk_bytes chunk = {(const uint8_t *)text, strlen(text)};
        int32_t rc = job->api->stream_write(job->responder, chunk);
        if (rc == SPK_OK) {
            job->next++;
        } else if (rc == SPK_FULL &&
                   job->api->stream_on_ready(job->responder, stream_pump, job) == SPK_OK) {
            return; /* the job lives on until the callback */
        } else {
            /* SPK_CLOSED: the request is over (client gone, stopping): nothing to end. */
            if (rc == SPK_ERR) {
                job->api->stream_end(job->responder, NULL, 0);
            }
            free(job);
            return;
        }
    }
    static const spk_header trailers[] = {{SPK_STR("x-chunks"), SPK_STR("3")}};
    job->api->stream_end(job->responder, trailers, 1);
    free(job);
}

static void stream_handle(hello_ctx *c, spk_responder *responder) {
    if (!host_streams(c->api)) {
        c->api->respond_error(responder, 501, str_of("streaming needs a host with ABI 1.1"), NULL, 0);
        return;
    }
    stream_job *job = malloc(sizeof *job);
    if (!job) {
        c->api->respond_error(responder, 500, str_of("out of memory"), NULL, 0);
        return;
    }
    job->api = c->api;
    job->responder = responder;
    job->next = 0;
    /* HTTP/1.1 sends only the trailers the head declares. */
    static const spk_header head[] = {{SPK_STR("content-type"), SPK_STR("text/plain")},
                                      {SPK_STR("trailer"), SPK_STR("x-chunks")}};
    /* Not OK: SPK_CLOSED (the request is over) or SPK_ERR (the host refused the head
     * and answered 500); either way the responder is the host's again. */
    if (c->api->stream_start(responder, 200, head, sizeof head / sizeof head[0]) != SPK_OK) {
        free(job);
        return;
    }
    stream_pump(job);
}

static void hello_handle(void *ctx, const spk_request *req, spk_responder *responder) {
    hello_ctx *c = ctx;
    if (req->handler_id == HANG_ID) {
        hang_handle(c, req, responder);
        return;
    }
    if (req->handler_id == STREAM_ID) {
        stream_handle(c, responder);
        return;
    }
    if (req->handler_id == CRASH_ID) {
        raise(SIGSEGV);
    }
    if (req->handler_id == EXIT_ID) {
        exit(3);
    }
    char body[1024];
    int n = snprintf(body, sizeof body, "{\"hello\":\"%s\",\"handler_id\":%llu,\"method\":\"%.*s\",\"params\":%.*s}",
                     c->greeting, (unsigned long long)req->handler_id,
                     (int)req->method.len, req->method.ptr,
                     (int)req->params_json.len, req->params_json.ptr);
    if (n < 0 || (size_t)n >= sizeof body) {
        c->api->respond_error(responder, 500, str_of("response too large"), NULL, 0);
        return;
    }
    spk_header headers[1] = {{str_of("content-type"), str_of("application/json")}};
    /* Zero-initialised: fields this code does not set (1.1's `release`) stay NULL. */
    spk_response resp = {0};
    resp.struct_size = sizeof resp;
    resp.status = 200;
    resp.headers = headers;
    resp.headers_len = 1;
    resp.body.ptr = (const uint8_t *)body;
    resp.body.len = (size_t)n;
    c->api->respond(responder, &resp);
}

static void hello_shutdown(void *ctx, uint64_t deadline_ms) {
    hello_ctx *c = ctx;
    (void)deadline_ms;
#ifdef SLOW_SHUTDOWN_MS
    struct timespec nap = {SLOW_SHUTDOWN_MS / 1000, (SLOW_SHUTDOWN_MS % 1000) * 1000000L};
    nanosleep(&nap, NULL);
#endif
    for (int i = 0; i < MAX_HANGING; i++) {
        if (c->hanging[i].responder) {
            c->api->respond_error(c->hanging[i].responder, 503, str_of("shutting down"), NULL, 0);
        }
    }
    c->api->log(c->host, SPK_LOG_INFO, str_of("c_plugin"), str_of("C plugin stopped"));
    free(c);
}

static const spk_plugin_vtable VTABLE = {
#ifdef BROKEN_SMALL_VTABLE
    sizeof(size_t) * 2,
#else
    sizeof(spk_plugin_vtable),
#endif
    hello_init, hello_bind, hello_handle, hello_cancel, hello_shutdown,
    NULL, /* cancel_token: no tokens are set; cancellations come to hello_cancel by id */
};

static const spk_plugin_decl DECL = {
#ifdef BROKEN_MAGIC
    0x1234,
#else
    SPIKARD_ABI_MAGIC,
#endif
#ifdef BROKEN_MAJOR
    2,
#else
    SPIKARD_ABI_MAJOR,
#endif
    SPIKARD_ABI_MINOR,
    sizeof(spk_plugin_decl),
    {"c_hello", 7},
    {"1.0.0", 5},
    &VTABLE,
};

#ifndef BROKEN_NO_SYMBOL
const spk_plugin_decl *spikard_plugin_v1(void) { return &DECL; }
#else
const spk_plugin_decl *some_other_symbol(void) { return &DECL; }
#endif

#ifdef LAYOUT_PROBE
#define FIELD(T, f) printf(#T "." #f " %zu\n", offsetof(T, f))
#define SIZE(T) printf(#T " %zu\n", sizeof(T))
void spikard_c_layout(void) {
    SIZE(spk_str); SIZE(spk_bytes); SIZE(spk_header);
    SIZE(spk_request); FIELD(spk_request, handler_id); FIELD(spk_request, request_id);
    FIELD(spk_request, method); FIELD(spk_request, path); FIELD(spk_request, query);
    FIELD(spk_request, headers); FIELD(spk_request, headers_len); FIELD(spk_request, params_json);
    FIELD(spk_request, body);
    SIZE(spk_response); FIELD(spk_response, status); FIELD(spk_response, headers);
    FIELD(spk_response, headers_len); FIELD(spk_response, body);
    SIZE(spk_route_decl); FIELD(spk_route_decl, method); FIELD(spk_route_decl, path);
    FIELD(spk_route_decl, handler_id); FIELD(spk_route_decl, schema_json);
    SIZE(spk_route_binding); FIELD(spk_route_binding, handler); FIELD(spk_route_binding, settings_json);
    SIZE(spk_host_api); FIELD(spk_host_api, abi_major); FIELD(spk_host_api, log);
    FIELD(spk_host_api, log_enabled); FIELD(spk_host_api, register_route); FIELD(spk_host_api, respond);
    FIELD(spk_host_api, respond_error); FIELD(spk_host_api, set_error);
    FIELD(spk_host_api, config_dir);
    SIZE(spk_plugin_vtable); FIELD(spk_plugin_vtable, init); FIELD(spk_plugin_vtable, bind_route);
    FIELD(spk_plugin_vtable, handle); FIELD(spk_plugin_vtable, cancel); FIELD(spk_plugin_vtable, shutdown);
    SIZE(spk_plugin_decl); FIELD(spk_plugin_decl, abi_major); FIELD(spk_plugin_decl, abi_minor);
    FIELD(spk_plugin_decl, struct_size); FIELD(spk_plugin_decl, name); FIELD(spk_plugin_decl, version);
    FIELD(spk_plugin_decl, vtable);
}
int main(void) { spikard_c_layout(); return 0; }
#endif
