/*
 * A spikard plugin written in C against abi/include/spikard_plugin.h alone:
 * the proof that the ABI is C-compatible. It serves one handler, `hello`,
 * which answers {"hello":"<name setting>","method":...,"params":...}.
 *
 * The tests compile it with the system C compiler. Preprocessor flags build
 * the broken variants the host must refuse cleanly:
 *   -DBROKEN_MAGIC, -DBROKEN_MAJOR, -DBROKEN_SMALL_VTABLE, -DBROKEN_INIT,
 *   -DBROKEN_NO_SYMBOL
 * and -DLAYOUT_PROBE adds `spikard_c_layout`, which reports sizeof/offsetof
 * of every struct so the test can compare them with the Rust definitions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>

#include "spikard_plugin.h"

typedef struct {
    const spk_host_api *api;
    spk_host *host;
    char greeting[64];
} hello_ctx;

static spk_str str_of(const char *s) {
    spk_str out = {s, strlen(s)};
    return out;
}

static int32_t hello_init(const spk_host_api *api, spk_host *host, spk_str settings,
                          void **ctx, spk_error *err) {
    (void)settings;
#ifdef BROKEN_INIT
    api->set_error(err, str_of("the C plugin refuses to start (BROKEN_INIT)"));
    return SPK_ERR;
#endif
    if (api->struct_size < sizeof(spk_host_api) || api->abi_major != SPIKARD_ABI_MAJOR) {
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
    api->log(host, SPK_LOG_INFO, str_of("c_plugin"), str_of("hello from C"));
    *ctx = c;
    return SPK_OK;
}

static int32_t hello_bind(void *ctx, const spk_route_binding *b, uint64_t *handler_id,
                          spk_error *err) {
    hello_ctx *c = ctx;
    if (b->handler.len != 5 || memcmp(b->handler.ptr, "hello", 5) != 0) {
        c->api->set_error(err, str_of("the C plugin only has a `hello` handler"));
        return SPK_ERR;
    }
    *handler_id = 7;
    return SPK_OK;
}

static void hello_handle(void *ctx, const spk_request *req, spk_responder *responder) {
    hello_ctx *c = ctx;
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
    spk_response resp;
    resp.struct_size = sizeof resp;
    resp.status = 200;
    resp.headers = headers;
    resp.headers_len = 1;
    resp.body.ptr = (const uint8_t *)body;
    resp.body.len = (size_t)n;
    c->api->respond(responder, &resp);
}

static void hello_shutdown(void *ctx, uint64_t deadline_ms) {
    (void)deadline_ms;
    free(ctx);
}

static const spk_plugin_vtable VTABLE = {
#ifdef BROKEN_SMALL_VTABLE
    sizeof(size_t) * 2,
#else
    sizeof(spk_plugin_vtable),
#endif
    hello_init, hello_bind, hello_handle, NULL, hello_shutdown,
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
