/*
 * A plugin from a "future minor" of ABI 1 (abi_minor 99), for tests/tests/abi_compat.rs:
 * the proof that today's host loads a plugin built against a newer 1.x header. Its
 * declaration and vtable are the 1.1 structs with fields appended (as a later minor
 * would), their struct_size is the larger sizeof, and the appended function must never
 * be called (it aborts). It also knows fields a future host would append to the request
 * and the host API, and reads them, like every 1.1 field, only when the host's
 * struct_size covers them: against today's host they are "absent".
 * Built with -std=c11 -Wall -Wextra -Wpedantic -Werror against abi/include. Handlers:
 *   hello  200, JSON: method, body length, route (1.1), request/api struct sizes, the
 *          host's minor, the future request field `tenant` ("" when the host's request
 *          ends before it) and whether the future host function `push_promise` exists
 *   hang   keeps the responder with a cancel token; vtable.cancel_token logs
 *          "future cancel_token <token>" and answers 503
 * Variants the host must refuse with one line: -DFUTURE_MAJOR=2 (another major),
 * -DSMALL_DECL and -DSMALL_VTABLE (a struct_size below ABI 1.0's: each stops before
 * its struct's last 1.0 field, as a broken build's would).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spikard_plugin.h"

/* Nonzero when a writer whose struct_size is `size` had `field` of struct `type`. */
#define SPK_COVERS(size, type, field) \
    ((size) >= offsetof(type, field) + sizeof(((type *)0)->field))

#define FUTURE_MINOR 99u
#ifndef FUTURE_MAJOR
#define FUTURE_MAJOR SPIKARD_ABI_MAJOR
#endif

/* The structs as the header of ABI 1.99 would have them: 1.1's, then appended fields. */
typedef struct future_request {
    spk_request v1_1;
    spk_str tenant; /* 1.99 */
} future_request;

typedef struct future_host_api {
    spk_host_api v1_1;
    int32_t (*push_promise)(spk_responder *responder, spk_str path); /* 1.99 */
} future_host_api;

typedef struct future_vtable {
    spk_plugin_vtable v1_1;
    void (*on_idle)(void *ctx, uint64_t idle_ms); /* 1.99 */
    uint64_t capabilities;                        /* 1.99 */
} future_vtable;

typedef struct future_decl {
    spk_plugin_decl v1_1;
    spk_str homepage;      /* 1.99 */
    uint64_t build_flags;  /* 1.99 */
} future_decl;

enum { HELLO_ID = 1, HANG_ID };
#define MAX_HANGING 16
#define TOKEN_BASE 7000u

typedef struct {
    const spk_host_api *api;
    spk_host *host;
    atomic_flag lock;
    spk_responder *hanging[MAX_HANGING];
} future_ctx;

static spk_str str_of(const char *s) {
    spk_str out = {s, strlen(s)};
    return out;
}

static void say(future_ctx *c, const char *message) {
    c->api->log(c->host, SPK_LOG_INFO, str_of("future_plugin"), str_of(message));
}

static int32_t future_init(const spk_host_api *api, spk_host *host, spk_str settings,
                           void **ctx, spk_error *err) {
    (void)settings;
    if (api->abi_major != SPIKARD_ABI_MAJOR) {
        api->set_error(err, str_of("the host's ABI is not 1.x"));
        return SPK_ERR;
    }
    future_ctx *c = calloc(1, sizeof *c);
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

static int32_t future_bind(void *ctx, const spk_route_binding *b, uint64_t *handler_id,
                           spk_error *err) {
    future_ctx *c = ctx;
    if (b->handler.len == 5 && memcmp(b->handler.ptr, "hello", 5) == 0) {
        *handler_id = HELLO_ID;
        return SPK_OK;
    }
    if (b->handler.len == 4 && memcmp(b->handler.ptr, "hang", 4) == 0) {
        *handler_id = HANG_ID;
        return SPK_OK;
    }
    c->api->set_error(err, str_of("the future plugin has `hello` and `hang`"));
    return SPK_ERR;
}

static void hello(future_ctx *c, const spk_request *req, spk_responder *responder) {
    /* The future fields, read only when the host wrote them. */
    const future_request *freq = (const future_request *)req;
    const future_host_api *fapi = (const future_host_api *)c->api;
    spk_str tenant = {NULL, 0};
    if (SPK_COVERS(req->struct_size, future_request, tenant)) {
        tenant = freq->tenant;
    }
    int has_push = SPK_COVERS(c->api->struct_size, future_host_api, push_promise) &&
                   fapi->push_promise != NULL;
    spk_str route = {"", 0};
    if (SPK_COVERS(req->struct_size, spk_request, route)) {
        route = req->route;
    }
    char body[1024];
    int n = snprintf(body, sizeof body,
                     "{\"plugin\":\"future\",\"method\":\"%.*s\",\"body_len\":%zu,"
                     "\"route\":\"%.*s\",\"request_struct_size\":%zu,\"api_struct_size\":%zu,"
                     "\"api_minor\":%u,\"tenant\":\"%.*s\",\"push_promise\":%s}",
                     (int)req->method.len, req->method.ptr, req->body.len, (int)route.len,
                     route.ptr, req->struct_size, c->api->struct_size,
                     (unsigned)c->api->abi_minor, (int)tenant.len, tenant.ptr ? tenant.ptr : "",
                     has_push ? "\"present\"" : "\"absent\"");
    if (n < 0 || (size_t)n >= sizeof body) {
        c->api->respond_error(responder, 500, str_of("hello too large"), NULL, 0);
        return;
    }
    static const spk_header json[1] = {{SPK_STR("content-type"), SPK_STR("application/json")}};
    spk_response resp = {.struct_size = sizeof resp, .status = 200, .headers = json, .headers_len = 1,
                         .body = {(const uint8_t *)body, (size_t)n}};
    c->api->respond(responder, &resp);
}

static void hang(future_ctx *c, spk_responder *responder) {
    if (!SPK_COVERS(c->api->struct_size, spk_host_api, set_cancel_token) ||
        !c->api->set_cancel_token) {
        c->api->respond_error(responder, 501, str_of("this host has no set_cancel_token"), NULL,
                              0);
        return;
    }
    while (atomic_flag_test_and_set_explicit(&c->lock, memory_order_acquire)) {
    }
    for (unsigned i = 0; i < MAX_HANGING; i++) {
        if (c->hanging[i] == NULL) {
            c->hanging[i] = responder;
            atomic_flag_clear_explicit(&c->lock, memory_order_release);
            c->api->set_cancel_token(responder, TOKEN_BASE + i);
            return;
        }
    }
    atomic_flag_clear_explicit(&c->lock, memory_order_release);
    c->api->respond_error(responder, 503, str_of("too many hanging requests"), NULL, 0);
}

static void future_handle(void *ctx, const spk_request *req, spk_responder *responder) {
    future_ctx *c = ctx;
    if (req->handler_id == HANG_ID) {
        hang(c, responder);
    } else {
        hello(c, req, responder);
    }
}

static void future_cancel_token(void *ctx, uint64_t token) {
    future_ctx *c = ctx;
    spk_responder *found = NULL;
    if (token >= TOKEN_BASE && token < TOKEN_BASE + MAX_HANGING) {
        while (atomic_flag_test_and_set_explicit(&c->lock, memory_order_acquire)) {
        }
        found = c->hanging[token - TOKEN_BASE];
        c->hanging[token - TOKEN_BASE] = NULL;
        atomic_flag_clear_explicit(&c->lock, memory_order_release);
    }
    char line[64];
    snprintf(line, sizeof line, "future cancel_token %llu", (unsigned long long)token);
    say(c, line);
    if (found) {
        c->api->respond_error(found, 503, str_of("cancelled"), NULL, 0);
    }
}

static void future_shutdown(void *ctx, uint64_t deadline_ms) {
    future_ctx *c = ctx;
    (void)deadline_ms;
    for (int i = 0; i < MAX_HANGING; i++) {
        if (c->hanging[i]) {
            c->api->respond_error(c->hanging[i], 503, str_of("stopping"), NULL, 0);
        }
    }
    free(c);
}

/* A 1.99 function today's host does not know: calling it would be a host bug. */
static void future_on_idle(void *ctx, uint64_t idle_ms) {
    (void)ctx;
    (void)idle_ms;
    abort();
}

static const future_vtable VTABLE = {
    .v1_1 =
        {
#ifdef SMALL_VTABLE
            .struct_size = offsetof(spk_plugin_vtable, shutdown),
#else
            .struct_size = sizeof(future_vtable),
#endif
            .init = future_init,
            .bind_route = future_bind,
            .handle = future_handle,
            .cancel = NULL,
            .shutdown = future_shutdown,
            .cancel_token = future_cancel_token,
        },
    .on_idle = future_on_idle,
    .capabilities = ~(uint64_t)0,
};

static const future_decl DECL = {
    .v1_1 =
        {
            .magic = SPIKARD_ABI_MAGIC,
            .abi_major = FUTURE_MAJOR,
            .abi_minor = FUTURE_MINOR,
#ifdef SMALL_DECL
            .struct_size = offsetof(spk_plugin_decl, vtable),
#else
            .struct_size = sizeof(future_decl),
#endif
            .name = SPK_STR("c_future"),
            .version = SPK_STR("1.99.0"),
            .vtable = &VTABLE.v1_1,
        },
    .homepage = SPK_STR("https://example.invalid/future"),
    .build_flags = ~(uint64_t)0,
};

const spk_plugin_decl *spikard_plugin_v1(void);
const spk_plugin_decl *spikard_plugin_v1(void) { return &DECL.v1_1; }
