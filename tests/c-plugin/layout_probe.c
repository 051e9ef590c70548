/*
 * Prints "<name> <value>" lines: the size of every ABI struct and the offset of every
 * field, as the C compiler lays them out, for tests/tests/abi_compat.rs to compare with
 * the Rust definitions (abi/src/ffi.rs). Built twice: against the frozen 1.0 header
 * (tests/c-plugin/v1_0, whose sizes must be ffi::min_size) and against the current one,
 * which adds the fields of each later minor.
 */
#include <stddef.h>
#include <stdio.h>

#include "spikard_plugin.h"

#define SIZE(T) printf(#T " %zu\n", sizeof(T))
#define FIELD(T, f) printf(#T "." #f " %zu\n", offsetof(T, f))

int main(void) {
    printf("minor %u\n", (unsigned)SPIKARD_ABI_MINOR);
    SIZE(spk_str);
    SIZE(spk_bytes);
    SIZE(spk_header);

    SIZE(spk_request);
    FIELD(spk_request, handler_id);
    FIELD(spk_request, request_id);
    FIELD(spk_request, method);
    FIELD(spk_request, path);
    FIELD(spk_request, query);
    FIELD(spk_request, headers);
    FIELD(spk_request, headers_len);
    FIELD(spk_request, params_json);
    FIELD(spk_request, body);

    SIZE(spk_response);
    FIELD(spk_response, status);
    FIELD(spk_response, headers);
    FIELD(spk_response, headers_len);
    FIELD(spk_response, body);

    SIZE(spk_route_decl);
    FIELD(spk_route_decl, method);
    FIELD(spk_route_decl, path);
    FIELD(spk_route_decl, handler_id);
    FIELD(spk_route_decl, schema_json);

    SIZE(spk_route_binding);
    FIELD(spk_route_binding, method);
    FIELD(spk_route_binding, path);
    FIELD(spk_route_binding, handler);
    FIELD(spk_route_binding, settings_json);

    SIZE(spk_host_api);
    FIELD(spk_host_api, abi_major);
    FIELD(spk_host_api, abi_minor);
    FIELD(spk_host_api, log);
    FIELD(spk_host_api, log_enabled);
    FIELD(spk_host_api, register_route);
    FIELD(spk_host_api, respond);
    FIELD(spk_host_api, respond_error);
    FIELD(spk_host_api, set_error);
    FIELD(spk_host_api, config_dir);

    SIZE(spk_plugin_vtable);
    FIELD(spk_plugin_vtable, init);
    FIELD(spk_plugin_vtable, bind_route);
    FIELD(spk_plugin_vtable, handle);
    FIELD(spk_plugin_vtable, cancel);
    FIELD(spk_plugin_vtable, shutdown);

    SIZE(spk_plugin_decl);
    FIELD(spk_plugin_decl, abi_major);
    FIELD(spk_plugin_decl, abi_minor);
    FIELD(spk_plugin_decl, struct_size);
    FIELD(spk_plugin_decl, name);
    FIELD(spk_plugin_decl, version);
    FIELD(spk_plugin_decl, vtable);

#if SPIKARD_ABI_MINOR >= 1
    FIELD(spk_request, client_addr);
    FIELD(spk_request, local_addr);
    FIELD(spk_request, scheme);
    FIELD(spk_request, http_version);
    FIELD(spk_request, route);
    FIELD(spk_request, timeout_ms);
    FIELD(spk_host_api, set_cancel_token);
    FIELD(spk_host_api, stream_start);
    FIELD(spk_host_api, stream_write);
    FIELD(spk_host_api, stream_on_ready);
    FIELD(spk_host_api, stream_end);
    FIELD(spk_plugin_vtable, cancel_token);
    printf("SPK_OK %d\nSPK_ERR %d\nSPK_FULL %d\nSPK_CLOSED %d\n", SPK_OK, SPK_ERR, SPK_FULL,
           SPK_CLOSED);
#endif
    return 0;
}
