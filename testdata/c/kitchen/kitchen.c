/*
 * kitchen.c: bulkhead's C conformance fixture, built with the C SDK.
 *
 * Build (from this directory; `make -C testdata c` does it):
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -Os -Wl,--strip-all -I../../../sdk-guest/c -o kitchen.wasm kitchen.c
 */
#include "bulkhead.h"

BH_EXPORT(echo) int32_t echo(void) {
    bh_buf in = bh_input();
    bh_output(in.ptr, in.len);
    bh_buf_free(&in);
    return BH_CODE_OK;
}

BH_EXPORT(json) int32_t json(void) {
    bh_buf in = bh_input();
    int64_t a = 0, b = 0;
    bool ok = bh_json_valid(in.ptr, in.len) && bh_json_int(in.ptr, in.len, "a", &a) &&
              bh_json_int(in.ptr, in.len, "b", &b);
    bh_buf_free(&in);
    if (!ok) return bh_fail_permanent("decode input: want {\"a\":int,\"b\":int}");
    char out[64];
    int n = snprintf(out, sizeof out, "{\"sum\":%lld}", (long long)(a + b));
    bh_output(out, (size_t)n);
    return BH_CODE_OK;
}

BH_EXPORT(config) int32_t config(void) {
    bh_buf key = bh_input(), val;
    if (!bh_config((const char *)key.ptr, &val)) {
        char msg[256];
        snprintf(msg, sizeof msg, "config key \"%s\" is not set", (const char *)key.ptr);
        bh_buf_free(&key);
        return bh_fail_permanent(msg);
    }
    bh_output(val.ptr, val.len);
    bh_buf_free(&key);
    bh_buf_free(&val);
    return BH_CODE_OK;
}

BH_EXPORT(var_incr) int32_t var_incr(void) {
    bh_buf v;
    long n = 0;
    if (bh_var("count", &v)) {
        n = strtol((const char *)v.ptr, NULL, 10);
        bh_buf_free(&v);
    }
    char s[32];
    int len = snprintf(s, sizeof s, "%ld", n + 1);
    bh_set_var("count", s, (size_t)len);
    bh_output(s, (size_t)len);
    return BH_CODE_OK;
}

BH_EXPORT(log) int32_t log_all(void) {
    bh_buf in = bh_input();
    bh_level levels[] = {BH_LOG_DEBUG, BH_LOG_INFO, BH_LOG_WARN, BH_LOG_ERROR};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) bh_logn(levels[i], in.ptr, in.len);
    bh_buf_free(&in);
    return BH_CODE_OK;
}

BH_EXPORT(fail) int32_t fail(void) {
    bh_buf in = bh_input();
    int32_t rc = bh_failn(BH_CODE_RETRYABLE, in.ptr, in.len);
    bh_buf_free(&in);
    return rc;
}

BH_EXPORT(fail_permanent) int32_t fail_permanent(void) {
    bh_buf in = bh_input();
    int32_t rc = bh_failn(BH_CODE_PERMANENT, in.ptr, in.len);
    bh_buf_free(&in);
    return rc;
}

BH_EXPORT(trap) int32_t trap(void) {
    fputs("kitchen: deliberate trap\n", stderr);
    __builtin_trap();
}

BH_EXPORT(invocation) int32_t invocation(void) {
    bh_invocation_t inv;
    if (!bh_invocation(&inv)) return bh_fail("no invocation info");
    bh_buf j = {0};
    bh_buf_append_str(&j, "{\"run_id\":");
    bh_json_quote(&j, inv.run_id);
    bh_buf_append_str(&j, ",\"workflow\":");
    bh_json_quote(&j, inv.workflow);
    bh_buf_append_str(&j, ",\"node\":");
    bh_json_quote(&j, inv.node);
    bh_buf_append_str(&j, ",\"attempt\":");
    bh_buf_append_int(&j, inv.attempt);
    bh_buf_append_str(&j, ",\"idempotency_key\":");
    bh_json_quote(&j, inv.idempotency_key);
    bh_buf_append_str(&j, ",\"deadline_unix_ms\":");
    bh_buf_append_int(&j, inv.deadline_unix_ms);
    bh_buf_append_str(&j, ",\"plugin\":");
    bh_json_quote(&j, inv.plugin);
    bh_buf_append_str(&j, ",\"plugin_version\":");
    bh_json_quote(&j, inv.plugin_version);
    bh_buf_append_str(&j, "}");
    bh_output(j.ptr, j.len);
    bh_buf_free(&j);
    bh_invocation_free(&inv);
    return BH_CODE_OK;
}

BH_EXPORT(retry_after) int32_t retry_after(void) {
    bh_buf in = bh_input();
    char *end;
    long long ms = strtoll((const char *)in.ptr, &end, 10);
    bool ok = in.len > 0 && *end == 0;
    bh_buf_free(&in);
    if (!ok) return bh_fail_permanent("input is not a number of milliseconds");
    bh_retry_after((uint64_t)ms);
    return bh_fail("rate limited");
}

/* durable exercises checkpoints, plugin state and progress with the input
 * as the key; it reports what it read as had=…;prev=…;got=…;after=…. */
BH_EXPORT(durable) int32_t durable(void) {
    bh_buf k = bh_input(), had, prev, got, after;
    const char *key = (const char *)k.ptr;
    bool has_had = bh_checkpoint_load(&had);
    char buf[512];
    snprintf(buf, sizeof buf, "cp:%s", key);
    int32_t rc = bh_checkpoint_save(buf, strlen(buf));
    if (rc != 0) {
        snprintf(buf, sizeof buf, "checkpoint not saved (code %d)", rc);
        return bh_fail(buf);
    }
    bool has_prev = bh_state_get(key, &prev);
    snprintf(buf, sizeof buf, "v:%s", key);
    if (bh_state_set(key, buf, strlen(buf)) != 0) return bh_fail("state not set");
    bool has_got = bh_state_get(key, &got);
    if (bh_state_delete(key) != 0) return bh_fail("state not deleted");
    bool has_after = bh_state_get(key, &after);
    snprintf(buf, sizeof buf, "half way \"%s\"", key);
    bh_progress(1, 2, buf);
    snprintf(buf, sizeof buf, "had=%s;prev=%s;got=%s;after=%s", has_had ? (char *)had.ptr : "none",
             has_prev ? (char *)prev.ptr : "none", has_got ? (char *)got.ptr : "none",
             has_after ? (char *)after.ptr : "none");
    bh_output_str(buf);
    return BH_CODE_OK;
}
