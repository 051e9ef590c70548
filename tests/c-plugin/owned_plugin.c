/*
 * An ABI 1.1 plugin in C answering with response bodies it keeps (spk_response.release),
 * for tests/tests/zero_copy.rs. Built with -std=c11 -Wall -Wextra -Wpedantic -Werror.
 *
 * Every owned body is one malloc'ed block {magic, length, bytes}; its release checks the
 * magic (a second release of a block not yet reused, or a stray pointer, counts as `bad`),
 * overwrites the bytes with 'X' (so a body read after its release would show), frees it
 * and counts the call. Handlers:
 *   owned       200, text/plain, `size` bytes (query `size=N`, default 1000) of
 *               "abc..z" repeated, from an owned block
 *   bad_header  an owned body with an invalid header name: respond must fail
 *   bad_status  an owned body with status 42: respond must fail
 *   twice       answers with an owned body, then again with another: the second fails
 *   late        keeps the responder (with a cancel token); when the host cancels it
 *               (the route's timeout), answers it with an owned body: that must fail
 *   stats       200, JSON {"given":G,"released":R,"bad":B}, answered by copy
 * A failing respond logs "owned <handler> rc=<rc> released_in_call=<0|1>": whether the
 * host released the body before respond returned, as it must when it refuses it.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spikard_plugin.h"

#define SPK_COVERS(size, type, field) \
    ((size) >= offsetof(type, field) + sizeof(((type *)0)->field))

enum { OWNED = 1, BAD_HEADER, BAD_STATUS, TWICE, LATE, STATS };
#define LIVE 0x0B0D1E5u
#define DEAD 0xDEADu
#define MAX_LATE 16
#define TOKEN_BASE 7000u

typedef struct {
    uint32_t magic;
    size_t len;
    uint8_t bytes[];
} block;

static atomic_size_t given, released, bad;

typedef struct {
    const spk_host_api *api;
    spk_host *host;
    atomic_flag lock; /* guards `late` */
    spk_responder *late[MAX_LATE];
} owned_ctx;

static const spk_str TARGET = SPK_STR("owned_plugin");

static spk_str str_of(const char *s) {
    spk_str out = {s, strlen(s)};
    return out;
}

static void say(owned_ctx *c, const char *message) {
    c->api->log(c->host, SPK_LOG_INFO, TARGET, str_of(message));
}

static void release_block(void *data) {
    block *b = data;
    if (b == NULL || b->magic != LIVE) {
        atomic_fetch_add(&bad, 1);
        return;
    }
    b->magic = DEAD;
    memset(b->bytes, 'X', b->len);
    free(b);
    atomic_fetch_add(&released, 1);
}

/* An owned block of `len` bytes of the alphabet, or NULL when out of memory. */
static block *new_block(size_t len) {
    block *b = malloc(sizeof *b + len);
    if (b == NULL) {
        return NULL;
    }
    b->magic = LIVE;
    b->len = len;
    for (size_t i = 0; i < len; i++) {
        b->bytes[i] = (uint8_t)('a' + i % 26);
    }
    return b;
}

/* Answers with an owned body of `len` bytes; returns respond's code and logs a failure. */
static int32_t respond_owned(owned_ctx *c, spk_responder *responder, const char *name,
                             uint16_t status, const spk_header *headers, size_t n, size_t len) {
    block *b = new_block(len);
    if (b == NULL) {
        return c->api->respond_error(responder, 500, str_of("out of memory"), NULL, 0);
    }
    spk_response resp = {.struct_size = sizeof resp,
                         .status = status,
                         .headers = headers,
                         .headers_len = n,
                         .body = {b->bytes, len},
                         .release = release_block,
                         .release_data = b};
    atomic_fetch_add(&given, 1);
    size_t before = atomic_load(&released);
    int32_t rc = c->api->respond(responder, &resp);
    if (rc != SPK_OK) {
        char line[96];
        snprintf(line, sizeof line, "owned %s rc=%d released_in_call=%d", name, (int)rc,
                 atomic_load(&released) > before);
        say(c, line);
    }
    return rc;
}

static int32_t owned_init(const spk_host_api *api, spk_host *host, spk_str settings, void **ctx,
                          spk_error *err) {
    (void)settings;
    /* A 1.0 host ignores `release` (it copies and never calls it): this plugin needs 1.1. */
    if (api->abi_major != SPIKARD_ABI_MAJOR || !SPK_COVERS(api->struct_size, spk_host_api, stream_end)) {
        api->set_error(err, str_of("owned bodies need a host of ABI 1.1 or later"));
        return SPK_ERR;
    }
    owned_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        api->set_error(err, str_of("out of memory"));
        return SPK_ERR;
    }
    c->api = api;
    c->host = host;
    atomic_flag_clear(&c->lock);
    *ctx = c;
    return SPK_OK;
}

static int named(spk_str s, const char *name) {
    return s.len == strlen(name) && memcmp(s.ptr, name, s.len) == 0;
}

static int32_t owned_bind(void *ctx, const spk_route_binding *b, uint64_t *handler_id,
                          spk_error *err) {
    owned_ctx *c = ctx;
    static const char *const names[] = {"owned", "bad_header", "bad_status", "twice", "late",
                                        "stats"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (named(b->handler, names[i])) {
            *handler_id = OWNED + i;
            return SPK_OK;
        }
    }
    c->api->set_error(err, str_of("no such handler in the owned plugin"));
    return SPK_ERR;
}

/* `size=N` from the query, else 1000. */
static size_t size_of_query(spk_str query) {
    char text[64];
    size_t n = query.len < sizeof text - 1 ? query.len : sizeof text - 1;
    memcpy(text, query.ptr, n);
    text[n] = '\0';
    const char *at = strstr(text, "size=");
    return at ? (size_t)strtoull(at + 5, NULL, 10) : 1000;
}

static void stats(owned_ctx *c, spk_responder *responder) {
    char body[128];
    int n = snprintf(body, sizeof body, "{\"given\":%zu,\"released\":%zu,\"bad\":%zu}",
                     atomic_load(&given), atomic_load(&released), atomic_load(&bad));
    spk_header json = {SPK_STR("content-type"), SPK_STR("application/json")};
    spk_response resp = {.struct_size = sizeof resp, .status = 200, .headers = &json,
                         .headers_len = 1, .body = {(const uint8_t *)body, (size_t)n}};
    c->api->respond(responder, &resp);
}

static void keep_late(owned_ctx *c, spk_responder *responder) {
    while (atomic_flag_test_and_set_explicit(&c->lock, memory_order_acquire)) {
    }
    for (unsigned i = 0; i < MAX_LATE; i++) {
        if (c->late[i] == NULL) {
            c->late[i] = responder;
            atomic_flag_clear_explicit(&c->lock, memory_order_release);
            c->api->set_cancel_token(responder, TOKEN_BASE + i);
            return;
        }
    }
    atomic_flag_clear_explicit(&c->lock, memory_order_release);
    c->api->respond_error(responder, 503, str_of("too many late requests"), NULL, 0);
}

static void owned_handle(void *ctx, const spk_request *req, spk_responder *responder) {
    owned_ctx *c = ctx;
    spk_header text = {SPK_STR("content-type"), SPK_STR("text/plain")};
    spk_header broken = {SPK_STR("bad header"), SPK_STR("x")};
    switch (req->handler_id) {
    case OWNED:
        respond_owned(c, responder, "owned", 200, &text, 1, size_of_query(req->query));
        break;
    case BAD_HEADER:
        respond_owned(c, responder, "bad_header", 200, &broken, 1, 64);
        break;
    case BAD_STATUS:
        respond_owned(c, responder, "bad_status", 42, &text, 1, 64);
        break;
    case TWICE:
        respond_owned(c, responder, "first", 200, &text, 1, 26);
        respond_owned(c, responder, "twice", 201, &text, 1, 64);
        break;
    case LATE:
        keep_late(c, responder);
        break;
    default:
        stats(c, responder);
    }
}

static void owned_cancel_token(void *ctx, uint64_t token) {
    owned_ctx *c = ctx;
    if (token < TOKEN_BASE || token >= TOKEN_BASE + MAX_LATE) {
        return;
    }
    while (atomic_flag_test_and_set_explicit(&c->lock, memory_order_acquire)) {
    }
    spk_responder *found = c->late[token - TOKEN_BASE];
    c->late[token - TOKEN_BASE] = NULL;
    atomic_flag_clear_explicit(&c->lock, memory_order_release);
    if (found) {
        spk_header text = {SPK_STR("content-type"), SPK_STR("text/plain")};
        respond_owned(c, found, "late", 200, &text, 1, 64);
    }
}

static void owned_shutdown(void *ctx, uint64_t deadline_ms) {
    (void)deadline_ms;
    free(ctx);
}

static const spk_plugin_vtable VTABLE = {
    .struct_size = sizeof(spk_plugin_vtable),
    .init = owned_init,
    .bind_route = owned_bind,
    .handle = owned_handle,
    .shutdown = owned_shutdown,
    .cancel_token = owned_cancel_token,
};

static const spk_plugin_decl DECL = {
    .magic = SPIKARD_ABI_MAGIC,
    .abi_major = SPIKARD_ABI_MAJOR,
    .abi_minor = SPIKARD_ABI_MINOR,
    .struct_size = sizeof(spk_plugin_decl),
    .name = SPK_STR("c_owned"),
    .version = SPK_STR("1.1.0"),
    .vtable = &VTABLE,
};

const spk_plugin_decl *spikard_plugin_v1(void);
const spk_plugin_decl *spikard_plugin_v1(void) { return &DECL; }
