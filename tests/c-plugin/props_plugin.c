/*
 * An ABI 1.1 plugin in C (abi/include/spikard_plugin.h), for tests/tests/abi_compat.rs:
 * it shows what a 1.1 plugin sees and uses, reading every 1.1 field only when the
 * writer's struct_size covers it. Built with -std=c11 -Wall -Wextra -Wpedantic -Werror.
 * Handlers:
 *   props  200, JSON of the request properties (route, client_addr, local_addr, scheme,
 *          http_version, timeout_ms, each null when request->struct_size does not cover
 *          it), the method, request->struct_size, api->abi_minor and api->config_dir();
 *          also the header x-method (a HEAD answer has no body to read it from)
 *   hang   keeps the responder after giving it a token with api->set_cancel_token; the
 *          host then cancels it through vtable.cancel_token, which logs
 *          "props cancel_token <token>" and answers 503 (a `cancel` by request id logs
 *          "props cancel by id", which a 1.1 host should never need here)
 * Static strings use SPK_STR, so the header's macro is compiled under -Wpedantic.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spikard_plugin.h"

/* Nonzero when a writer whose struct_size is `size` had `field` of struct `type`. */
#define SPK_COVERS(size, type, field) \
    ((size) >= offsetof(type, field) + sizeof(((type *)0)->field))

enum { PROPS_ID = 1, HANG_ID };
#define MAX_HANGING 16
#define TOKEN_BASE 1000u

typedef struct {
    const spk_host_api *api;
    spk_host *host;
    atomic_flag lock; /* guards `hanging`: handle and cancel_token run concurrently */
    spk_responder *hanging[MAX_HANGING]; /* indexed by token - TOKEN_BASE */
} props_ctx;

static const spk_header JSON_TYPE = {SPK_STR("content-type"), SPK_STR("application/json")};
static const spk_str TARGET = SPK_STR("props_plugin");

static spk_str str_of(const char *s) {
    spk_str out = {s, strlen(s)};
    return out;
}

static void lock(props_ctx *c) {
    while (atomic_flag_test_and_set_explicit(&c->lock, memory_order_acquire)) {
    }
}

static void unlock(props_ctx *c) { atomic_flag_clear_explicit(&c->lock, memory_order_release); }

static void say(props_ctx *c, const char *message) {
    c->api->log(c->host, SPK_LOG_INFO, TARGET, str_of(message));
}

static int32_t props_init(const spk_host_api *api, spk_host *host, spk_str settings,
                          void **ctx, spk_error *err) {
    (void)settings;
    if (api->abi_major != SPIKARD_ABI_MAJOR) {
        api->set_error(err, str_of("the host's ABI is not 1.x"));
        return SPK_ERR;
    }
    props_ctx *c = calloc(1, sizeof *c);
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

static int32_t props_bind(void *ctx, const spk_route_binding *b, uint64_t *handler_id,
                          spk_error *err) {
    props_ctx *c = ctx;
    if (b->handler.len == 5 && memcmp(b->handler.ptr, "props", 5) == 0) {
        *handler_id = PROPS_ID;
        return SPK_OK;
    }
    if (b->handler.len == 4 && memcmp(b->handler.ptr, "hang", 4) == 0) {
        *handler_id = HANG_ID;
        return SPK_OK;
    }
    c->api->set_error(err, str_of("the props plugin has `props` and `hang`"));
    return SPK_ERR;
}

/* Appends `"name":"value"` (or `"name":null` when absent) and a comma to out[*at..cap]. */
static void put_str(char *out, size_t cap, size_t *at, const char *name, int present,
                    spk_str value) {
    int n = present ? snprintf(out + *at, cap - *at, "\"%s\":\"%.*s\",", name, (int)value.len,
                               value.ptr)
                    : snprintf(out + *at, cap - *at, "\"%s\":null,", name);
    if (n > 0 && *at + (size_t)n < cap) {
        *at += (size_t)n;
    }
}

static void props(props_ctx *c, const spk_request *req, spk_responder *responder) {
    char body[2048];
    size_t at = 0;
    body[at++] = '{';
#define HAS(field) SPK_COVERS(req->struct_size, spk_request, field)
    put_str(body, sizeof body, &at, "method", 1, req->method);
    put_str(body, sizeof body, &at, "route", HAS(route), req->route);
    put_str(body, sizeof body, &at, "client_addr", HAS(client_addr), req->client_addr);
    put_str(body, sizeof body, &at, "local_addr", HAS(local_addr), req->local_addr);
    put_str(body, sizeof body, &at, "scheme", HAS(scheme), req->scheme);
    put_str(body, sizeof body, &at, "http_version", HAS(http_version), req->http_version);
    put_str(body, sizeof body, &at, "config_dir", 1, c->api->config_dir(c->host));
    int n = HAS(timeout_ms)
                ? snprintf(body + at, sizeof body - at, "\"timeout_ms\":%llu,",
                           (unsigned long long)req->timeout_ms)
                : snprintf(body + at, sizeof body - at, "\"timeout_ms\":null,");
#undef HAS
    if (n > 0 && at + (size_t)n < sizeof body) {
        at += (size_t)n;
    }
    n = snprintf(body + at, sizeof body - at,
                 "\"request_struct_size\":%zu,\"api_minor\":%u,\"api_struct_size\":%zu}",
                 req->struct_size, (unsigned)c->api->abi_minor, c->api->struct_size);
    if (n < 0 || at + (size_t)n >= sizeof body) {
        c->api->respond_error(responder, 500, str_of("props too large"), NULL, 0);
        return;
    }
    at += (size_t)n;
    spk_header headers[2] = {JSON_TYPE, {SPK_STR("x-method"), req->method}};
    spk_response resp = {.struct_size = sizeof resp, .status = 200, .headers = headers, .headers_len = 2,
                         .body = {(const uint8_t *)body, at}};
    c->api->respond(responder, &resp);
}

static void hang(props_ctx *c, spk_responder *responder) {
    if (!SPK_COVERS(c->api->struct_size, spk_host_api, set_cancel_token) ||
        !c->api->set_cancel_token) {
        c->api->respond_error(responder, 501, str_of("this host has no set_cancel_token"), NULL,
                              0);
        return;
    }
    lock(c);
    for (unsigned i = 0; i < MAX_HANGING; i++) {
        if (c->hanging[i] == NULL) {
            c->hanging[i] = responder;
            unlock(c);
            int32_t rc = c->api->set_cancel_token(responder, TOKEN_BASE + i);
            char line[64];
            snprintf(line, sizeof line, "props set_cancel_token %u -> %d", TOKEN_BASE + i,
                     (int)rc);
            say(c, line);
            return;
        }
    }
    unlock(c);
    c->api->respond_error(responder, 503, str_of("too many hanging requests"), NULL, 0);
}

static void props_handle(void *ctx, const spk_request *req, spk_responder *responder) {
    props_ctx *c = ctx;
    if (req->handler_id == HANG_ID) {
        hang(c, responder);
    } else {
        props(c, req, responder);
    }
}

static void props_cancel(void *ctx, spk_str request_id) {
    (void)request_id;
    say(ctx, "props cancel by id");
}

static void props_cancel_token(void *ctx, uint64_t token) {
    props_ctx *c = ctx;
    spk_responder *found = NULL;
    if (token >= TOKEN_BASE && token < TOKEN_BASE + MAX_HANGING) {
        lock(c);
        found = c->hanging[token - TOKEN_BASE];
        c->hanging[token - TOKEN_BASE] = NULL;
        unlock(c);
    }
    char line[64];
    snprintf(line, sizeof line, "props cancel_token %llu", (unsigned long long)token);
    say(c, line);
    if (found) {
        c->api->respond_error(found, 503, str_of("cancelled"), NULL, 0);
    }
}

static void props_shutdown(void *ctx, uint64_t deadline_ms) {
    props_ctx *c = ctx;
    (void)deadline_ms;
    for (int i = 0; i < MAX_HANGING; i++) {
        if (c->hanging[i]) {
            c->api->respond_error(c->hanging[i], 503, str_of("stopping"), NULL, 0);
        }
    }
    free(c);
}

static const spk_plugin_vtable VTABLE = {
    .struct_size = sizeof(spk_plugin_vtable),
    .init = props_init,
    .bind_route = props_bind,
    .handle = props_handle,
    .cancel = props_cancel,
    .shutdown = props_shutdown,
    .cancel_token = props_cancel_token,
};

static const spk_plugin_decl DECL = {
    .magic = SPIKARD_ABI_MAGIC,
    .abi_major = SPIKARD_ABI_MAJOR,
    .abi_minor = SPIKARD_ABI_MINOR,
    .struct_size = sizeof(spk_plugin_decl),
    .name = SPK_STR("c_props"),
    .version = SPK_STR("1.1.0"),
    .vtable = &VTABLE,
};

const spk_plugin_decl *spikard_plugin_v1(void);
const spk_plugin_decl *spikard_plugin_v1(void) { return &DECL; }
