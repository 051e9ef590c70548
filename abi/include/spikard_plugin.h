/*
 * spikard_plugin.h — the Spikard Host plugin ABI, version 1.1.
 *
 * A plugin is a shared library that exports one symbol, `spikard_plugin_v1`,
 * returning a static declaration. The host checks the declaration's magic,
 * major version and struct sizes before it calls anything else.
 *
 * Compatibility rules (see abi/README.md for the full text):
 *  - Every struct that crosses the boundary starts with (or carries) its
 *    `struct_size`. A minor version only appends fields at the end; a reader
 *    uses a field only when `struct_size` says the writer had it.
 *  - A breaking change gets a new major version and a new symbol
 *    (`spikard_plugin_v2`); the host may export both.
 *
 * Ownership rules:
 *  - Everything passed into a call (strings, arrays, the request) is borrowed
 *    for the duration of that call only. Whoever wants to keep it copies it.
 *  - No memory is ever freed across the boundary: the host never frees plugin
 *    memory and the plugin never frees host memory.
 *  - Strings are UTF-8, given as {ptr, len}, not NUL-terminated. A {NULL, 0}
 *    string is the empty string.
 *
 * Threading rules:
 *  - `init`, `bind_route` and `shutdown` are called from one host thread,
 *    never concurrently with each other.
 *  - `handle` and `cancel` are called concurrently from any host thread,
 *    only between a successful `init` and `shutdown`. They must not block:
 *    do the work elsewhere if it is slow and answer later through the
 *    responder.
 *  - `respond`, `respond_error`, `log` and `log_enabled` may be called from
 *    any thread at any time after `init` has begun; so may the 1.1 stream
 *    functions and `set_cancel_token`, for a responder the plugin still holds.
 *
 * Responders (1.1 hosts): a responder is valid from `handle` until the plugin
 * answers it (`respond`, `respond_error`, `stream_end`) or the request ends
 * (timeout, client gone, shutdown). A second answer, or a call on a responder
 * whose request is over, returns SPK_ERR (SPK_CLOSED for stream calls) and is
 * logged; it is never undefined behaviour. The host reclaims a responder the
 * plugin never answers when its request ends.
 */
#ifndef SPIKARD_PLUGIN_H
#define SPIKARD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "SPKRDPLG" as a little-endian u64: the first field of every declaration. */
#define SPIKARD_ABI_MAGIC 0x474C5044524B5053ULL
#define SPIKARD_ABI_MAJOR 1u
#define SPIKARD_ABI_MINOR 1u
/* The one symbol a v1 plugin exports. */
#define SPIKARD_PLUGIN_SYMBOL_V1 "spikard_plugin_v1"

/* Return codes of fallible calls. */
#define SPK_OK 0
#define SPK_ERR 1
/* 1.1, stream_write: not taken, the stream is full; wait for the ready callback. */
#define SPK_FULL 2
/* 1.1: the request is over (client gone, timed out, stopping); stop writing. */
#define SPK_CLOSED 3

/* A spk_str from a string literal, usable in static initializers:
 * static const spk_header h = { SPK_STR("content-type"), SPK_STR("text/plain") }; */
#define SPK_STR(literal) { ("" literal), sizeof("" literal) - 1 }  /* literals only */

/* Log levels, most severe first. */
#define SPK_LOG_ERROR 1u
#define SPK_LOG_WARN 2u
#define SPK_LOG_INFO 3u
#define SPK_LOG_DEBUG 4u
#define SPK_LOG_TRACE 5u

/* A borrowed UTF-8 string. */
typedef struct spk_str {
    const char *ptr;
    size_t len;
} spk_str;

/* A borrowed byte buffer. */
typedef struct spk_bytes {
    const uint8_t *ptr;
    size_t len;
} spk_bytes;

/* One HTTP header; names are lower-case in requests. */
typedef struct spk_header {
    spk_str name;
    spk_str value;
} spk_header;

/* Opaque host objects. */
typedef struct spk_host spk_host;           /* one per loaded plugin, lives for the process */
typedef struct spk_responder spk_responder; /* one per request, consumed by respond* */
typedef struct spk_error spk_error;         /* an out-parameter for error messages */

/* A request, borrowed for the duration of `handle`. */
typedef struct spk_request {
    size_t struct_size;
    uint64_t handler_id;    /* the id the plugin chose in bind_route/register_route */
    spk_str request_id;     /* unique among requests in flight (a client's usable x-request-id, else a host UUID); also in the response header */
    spk_str method;         /* "GET", "POST", ... */
    spk_str path;           /* percent-encoded path as received, without the query */
    spk_str query;          /* raw query string without '?', possibly empty */
    const spk_header *headers;
    size_t headers_len;
    /* Validated and coerced parameters as a JSON object:
     * {"path":{..},"query":{..},"headers":{..},"cookies":{..}} and, for a
     * validated application/x-www-form-urlencoded body, "form":{..}. */
    spk_str params_json;
    spk_bytes body;         /* the request body; already validated when the route has a body schema */
    /* --- 1.1: read only when struct_size >= offsetof(spk_request, field) + sizeof(field) --- */
    spk_str client_addr;    /* "ip:port" or "[ip6]:port" of the peer; empty when unknown */
    spk_str local_addr;     /* the address the connection was accepted on */
    spk_str scheme;         /* "http" (a TLS-terminating proxy in front is not seen) */
    spk_str http_version;   /* "HTTP/1.1", "HTTP/1.0" */
    spk_str route;          /* the matched route template, e.g. "/items/{id}" */
    uint64_t timeout_ms;    /* ms left, at the call, before the host answers 504 */
    uint64_t flags;         /* SPK_REQUEST_BODY_STREAMED: read the body with api->body_next */
} spk_request;

/* spk_request.flags (1.1) */
#define SPK_REQUEST_BODY_STREAMED 1ull

/* A response, borrowed for the duration of `respond`; the host copies it
 * (all of it, or, with `release` (1.1), all but the body). */
typedef struct spk_response {
    size_t struct_size;
    uint16_t status;
    const spk_header *headers;
    size_t headers_len;
    spk_bytes body;
    /* --- 1.1 --- */
    /* Optional: keep `body` yours and skip the copy. The host calls
     * release(release_data) exactly once, from any thread, when it is done
     * with the buffer (also when respond fails). NULL: the host copies.
     * Until then the bytes must stay readable (from any thread) and
     * unchanged; the host never reads them after release. release may run
     * before respond returns (on the calling thread when the answer is
     * refused: invalid header or status, a second answer, a request already
     * over; or on a host thread once the body is sent): it must not block
     * nor take a lock held around respond. A 1.0 host ignores both fields,
     * copies the body and never calls release: set them only when
     * api->struct_size is larger than 1.0's (72 bytes on 64-bit targets),
     * else free the buffer yourself when respond returns. */
    void (*release)(void *release_data);
    void *release_data;
} spk_response;

/* A route a plugin declares itself during `init` (used by plugins such as
 * Python that know their routes from user code). */
typedef struct spk_route_decl {
    size_t struct_size;
    spk_str method;         /* "GET", ... */
    spk_str path;           /* "/items/{id}" */
    uint64_t handler_id;    /* passed back in spk_request.handler_id */
    /* JSON object with optional keys "path", "query", "headers", "cookies"
     * (object schemas), "body" and "response" (JSON Schemas). Empty = none. */
    spk_str schema_json;
} spk_route_decl;

/* A route of the host's config that names this plugin, offered to `bind_route`. */
typedef struct spk_route_binding {
    size_t struct_size;
    spk_str method;
    spk_str path;
    spk_str handler;        /* the route's `handler` field */
    spk_str settings_json;  /* the route's `settings` table as JSON ("{}" when absent) */
} spk_route_binding;

/* Functions the host offers the plugin. Valid for the life of the process. */
typedef struct spk_host_api {
    size_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;
    /* Forward a log record to the host's logger. `target` names the source
     * (e.g. "app.db"; empty: the plugin's name); the record carries a
     * `plugin=<name>` field. */
    void (*log)(spk_host *host, uint32_t level, spk_str target, spk_str message);
    /* Nonzero when a record at this level and target would be kept. */
    int32_t (*log_enabled)(spk_host *host, uint32_t level, spk_str target);
    /* Declare a route. Only valid during `init`. SPK_ERR when called outside
     * `init` or when schema_json is not a JSON object: the host records why
     * and reports it as the start-up error, so `init` should then return
     * SPK_ERR too. A bad method or path, an invalid schema or a clash with
     * another route is found when the routes are built after `init`: also a
     * start-up error naming the route. */
    int32_t (*register_route)(spk_host *host, const spk_route_decl *route);
    /* Answer a request. Call exactly once per responder, from any thread;
     * the responder is invalid afterwards. Returns SPK_ERR when the response
     * was malformed (the client then gets a 500), SPK_OK otherwise. */
    int32_t (*respond)(spk_responder *responder, const spk_response *response);
    /* Answer with an RFC 9457 Problem Details body built by the host, with
     * extra response headers (e.g. www-authenticate; NULL/0 for none). Same
     * once-only rule as `respond`; `status` must be 400..=599. */
    int32_t (*respond_error)(spk_responder *responder, uint16_t status, spk_str detail,
                             const spk_header *headers, size_t headers_len);
    /* Set the message of an error out-parameter the host passed to `init` or
     * `bind_route` (copied by the host; call again to replace it). */
    void (*set_error)(spk_error *err, spk_str message);
    /* The absolute directory of the config file, against which a plugin
     * resolves relative paths in its settings. Valid for the process. */
    spk_str (*config_dir)(spk_host *host);

    /* --- 1.1: present when struct_size covers them (NULL/absent on 1.0 hosts) --- */

    /* Give the request a token of the plugin's choosing (e.g. an index into
     * its own table): a cancellation of this request then calls the vtable's
     * `cancel_token(ctx, token)` instead of `cancel(ctx, request_id)`. */
    int32_t (*set_cancel_token)(spk_responder *responder, uint64_t token);
    /* Start a streamed response: status and headers are sent now (no
     * content-length; chunked), the body follows through stream_write. */
    int32_t (*stream_start)(spk_responder *responder, uint16_t status,
                            const spk_header *headers, size_t headers_len);
    /* Write one body chunk (copied). SPK_OK: taken. SPK_FULL: not taken, the
     * host holds as much as it buffers for this request; call
     * stream_on_ready and write it again when called back. SPK_CLOSED: the
     * request is over; stop. SPK_ERR: not started, or ended. Never blocks. */
    int32_t (*stream_write)(spk_responder *responder, spk_bytes chunk);
    /* Ask for one call of ready(user) when the stream can take a write again
     * or is closed. Made from a host thread, never from inside this call;
     * do not block in it. `ready` must not be NULL (SPK_ERR). */
    int32_t (*stream_on_ready)(spk_responder *responder, void (*ready)(void *user),
                               void *user);
    /* End the stream, with optional trailers (NULL/0 for none). Trailers are
     * sent only when stream_start declared them in a `trailer` header and the
     * client sent `TE: trailers`; otherwise they are dropped. The responder
     * is invalid afterwards. */
    int32_t (*stream_end)(spk_responder *responder, const spk_header *trailers,
                          size_t trailers_len);
    /* For a request with SPK_REQUEST_BODY_STREAMED: ask for the next body
     * chunk. The host calls on_chunk(user, chunk, status) once, from a host
     * thread, never inside this call: status SPK_OK with a chunk (borrowed
     * for the callback), SPK_CLOSED with an empty chunk at the end of the
     * body, SPK_ERR when the body failed (over the route's body_limit — the
     * host then answers 413 itself —, too slow, client gone). One request
     * at a time: call again from the callback (or later) for the next.
     * Returns SPK_OK (a callback follows), SPK_CLOSED (the body already
     * ended or failed, or the request is over: no callback) or SPK_ERR
     * (not a streamed body, a read already pending, NULL callback). */
    int32_t (*body_next)(spk_responder *responder,
                         void (*on_chunk)(void *user, spk_bytes chunk, int32_t status),
                         void *user);
} spk_host_api;

/* The functions a plugin provides. */
typedef struct spk_plugin_vtable {
    size_t struct_size;
    /* Create the plugin instance. `settings_json` is the plugin's `settings`
     * table as JSON. Store the instance in *ctx. Return SPK_OK, or SPK_ERR
     * with a message set through api->set_error(err, ...). A message that
     * starts with "settings.<field>" is shown with the field's full config
     * path ("plugins[2].settings.<field>"), so say which setting to fix. */
    int32_t (*init)(const spk_host_api *api, spk_host *host, spk_str settings_json,
                    void **ctx, spk_error *err);
    /* Accept a config route naming this plugin: resolve `binding->handler`
     * and write the id to pass back in requests to *handler_id. Return
     * SPK_ERR with a message (e.g. "no handler named x") to refuse it. */
    int32_t (*bind_route)(void *ctx, const spk_route_binding *binding, uint64_t *handler_id,
                          spk_error *err);
    /* Handle one request; answer through api->respond or api->respond_error
     * exactly once, now or later, from any thread. Must not block. */
    void (*handle)(void *ctx, const spk_request *request, spk_responder *responder);
    /* Optional (may be NULL): the client went away, the request timed out or
     * the host is stopping without waiting for it. On a 1.1 host the request
     * is over when this is called: stop its work; an answer is refused
     * (SPK_ERR), never undefined. (1.0 hosts: the responder stayed valid and
     * had to be answered.) Never called after `shutdown`. */
    void (*cancel)(void *ctx, spk_str request_id);
    /* Stop: finish or drop outstanding work within `deadline_ms`, the time
     * the host has left before it exits (it does not wait much longer).
     * Called once, after every request the host still waited for has been
     * cancelled; no `handle` or `cancel` follows. The plugin's library is
     * never unloaded. */
    void (*shutdown)(void *ctx, uint64_t deadline_ms);

    /* --- 1.1 --- */
    /* Optional: like `cancel`, for a request the plugin gave a token with
     * set_cancel_token; called instead of `cancel` for it. */
    void (*cancel_token)(void *ctx, uint64_t token);
} spk_plugin_vtable;

/* The static declaration returned by `spikard_plugin_v1`. */
typedef struct spk_plugin_decl {
    uint64_t magic;         /* SPIKARD_ABI_MAGIC */
    uint32_t abi_major;     /* SPIKARD_ABI_MAJOR the plugin was built against */
    uint32_t abi_minor;     /* SPIKARD_ABI_MINOR the plugin was built against */
    size_t struct_size;     /* sizeof(spk_plugin_decl) */
    spk_str name;
    spk_str version;
    const spk_plugin_vtable *vtable;
} spk_plugin_decl;

typedef const spk_plugin_decl *(*spk_plugin_entry_v1)(void);

#ifdef __cplusplus
}
#endif

#endif /* SPIKARD_PLUGIN_H */
