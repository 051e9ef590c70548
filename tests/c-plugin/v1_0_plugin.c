/*
 * A plugin built against the FROZEN ABI 1.0 header, tests/c-plugin/v1_0/spikard_plugin.h
 * (a verbatim copy of the released one): the proof that a 1.0 plugin binary keeps
 * loading and serving in every later 1.x host. tests/tests/abi_compat.rs builds it with
 * -I tests/c-plugin/v1_0 and -std=c11 -Wall -Wextra -Wpedantic -Werror. Handlers:
 *   info  200, JSON of what it was handed (method, path, query, params) and what it can
 *         see of the newer host: request->struct_size, api->abi_minor, api->struct_size
 *   echo  201 with the request body and its content-type, plus x-body-len
 *   fail  respond_error 409 with a detail and an extra header
 *   hang  keeps the responder until cancel(ctx, request_id), which logs
 *         "v1.0 cancel <id>" and answers 503 (a 1.0 vtable has no cancel_token, so a
 *         1.1 host must cancel it by request id)
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spikard_plugin.h"

#if SPIKARD_ABI_MINOR != 0
#error "v1_0_plugin.c must be built against the frozen 1.0 header (-I tests/c-plugin/v1_0)"
#endif

enum { INFO_ID = 1, ECHO_ID, FAIL_ID, HANG_ID };
#define MAX_HANGING 16

typedef struct {
    char request_id[64];
    size_t id_len;
    spk_responder *responder; /* NULL: a free slot */
} hanging;

typedef struct {
    const spk_host_api *api;
    spk_host *host;
    atomic_flag lock; /* guards `hanging`: handle and cancel run concurrently */
    hanging hanging[MAX_HANGING];
} v10_ctx;

static spk_str str_of(const char *s) {
    spk_str out = {s, strlen(s)};
    return out;
}

static int str_is(spk_str s, const char *lit) {
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static void lock(v10_ctx *c) {
    while (atomic_flag_test_and_set_explicit(&c->lock, memory_order_acquire)) {
    }
}

static void unlock(v10_ctx *c) { atomic_flag_clear_explicit(&c->lock, memory_order_release); }

static void say(v10_ctx *c, const char *message) {
    c->api->log(c->host, SPK_LOG_INFO, str_of("v1_0_plugin"), str_of(message));
}

static int32_t v10_init(const spk_host_api *api, spk_host *host, spk_str settings, void **ctx,
                        spk_error *err) {
    (void)settings;
    /* What a 1.0 plugin can check: the major, and that the table is at least 1.0's. */
    if (api->abi_major != SPIKARD_ABI_MAJOR || api->struct_size < sizeof(spk_host_api)) {
        api->set_error(err, str_of("the host's ABI is not 1.x"));
        return SPK_ERR;
    }
    v10_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        api->set_error(err, str_of("out of memory"));
        return SPK_ERR;
    }
    c->api = api;
    c->host = host;
    atomic_flag_clear(&c->lock);
    say(c, "v1.0 plugin ready");
    *ctx = c;
    return SPK_OK;
}

static int32_t v10_bind(void *ctx, const spk_route_binding *b, uint64_t *handler_id,
                        spk_error *err) {
    v10_ctx *c = ctx;
    static const char *const names[] = {"info", "echo", "fail", "hang"};
    for (uint64_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (str_is(b->handler, names[i])) {
            *handler_id = INFO_ID + i;
            return SPK_OK;
        }
    }
    c->api->set_error(err, str_of("the v1.0 plugin has `info`, `echo`, `fail` and `hang`"));
    return SPK_ERR;
}

static void respond_json(v10_ctx *c, spk_responder *responder, const char *body, int n) {
    static const spk_header json[1] = {{{"content-type", 12}, {"application/json", 16}}};
    spk_response resp = {sizeof resp, 200, json, 1, {(const uint8_t *)body, (size_t)n}};
    c->api->respond(responder, &resp);
}

static void info(v10_ctx *c, const spk_request *req, spk_responder *responder) {
    char body[2048];
    int n = snprintf(body, sizeof body,
                     "{\"plugin\":\"v1_0\",\"method\":\"%.*s\",\"path\":\"%.*s\","
                     "\"query\":\"%.*s\",\"params\":%.*s,\"request_struct_size\":%zu,"
                     "\"api_minor\":%u,\"api_struct_size\":%zu}",
                     (int)req->method.len, req->method.ptr, (int)req->path.len, req->path.ptr,
                     (int)req->query.len, req->query.ptr, (int)req->params_json.len,
                     req->params_json.ptr, req->struct_size, (unsigned)c->api->abi_minor,
                     c->api->struct_size);
    if (n < 0 || (size_t)n >= sizeof body) {
        c->api->respond_error(responder, 500, str_of("info too large"), NULL, 0);
        return;
    }
    respond_json(c, responder, body, n);
}

static void echo(v10_ctx *c, const spk_request *req, spk_responder *responder) {
    spk_str type = str_of("application/octet-stream");
    for (size_t i = 0; i < req->headers_len; i++) {
        if (str_is(req->headers[i].name, "content-type")) {
            type = req->headers[i].value;
        }
    }
    char len[32];
    snprintf(len, sizeof len, "%zu", req->body.len);
    spk_header headers[2] = {{str_of("content-type"), type}, {str_of("x-body-len"), str_of(len)}};
    spk_response resp = {sizeof resp, 201, headers, 2, req->body};
    c->api->respond(responder, &resp);
}

static void hang(v10_ctx *c, const spk_request *req, spk_responder *responder) {
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

static void v10_handle(void *ctx, const spk_request *req, spk_responder *responder) {
    v10_ctx *c = ctx;
    switch (req->handler_id) {
    case INFO_ID:
        info(c, req, responder);
        return;
    case ECHO_ID:
        echo(c, req, responder);
        return;
    case FAIL_ID: {
        spk_header extra[1] = {{str_of("x-reason"), str_of("v1.0 refusal")}};
        c->api->respond_error(responder, 409, str_of("the v1.0 plugin says no"), extra, 1);
        return;
    }
    case HANG_ID:
        hang(c, req, responder);
        return;
    default:
        c->api->respond_error(responder, 500, str_of("unknown handler id"), NULL, 0);
    }
}

static void v10_cancel(void *ctx, spk_str request_id) {
    v10_ctx *c = ctx;
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
        char line[128];
        snprintf(line, sizeof line, "v1.0 cancel %.*s", (int)request_id.len, request_id.ptr);
        say(c, line);
        c->api->respond_error(found, 503, str_of("cancelled"), NULL, 0);
    }
}

static void v10_shutdown(void *ctx, uint64_t deadline_ms) {
    v10_ctx *c = ctx;
    (void)deadline_ms;
    for (int i = 0; i < MAX_HANGING; i++) {
        if (c->hanging[i].responder) {
            c->api->respond_error(c->hanging[i].responder, 503, str_of("stopping"), NULL, 0);
        }
    }
    say(c, "v1.0 plugin stopped");
    free(c);
}

static const spk_plugin_vtable VTABLE = {
    sizeof(spk_plugin_vtable), v10_init, v10_bind, v10_handle, v10_cancel, v10_shutdown,
};

static const spk_plugin_decl DECL = {
    SPIKARD_ABI_MAGIC,   SPIKARD_ABI_MAJOR, SPIKARD_ABI_MINOR, sizeof(spk_plugin_decl),
    {"c_v1_0", 6},       {"1.0.0", 5},      &VTABLE,
};

const spk_plugin_decl *spikard_plugin_v1(void);
const spk_plugin_decl *spikard_plugin_v1(void) { return &DECL; }
