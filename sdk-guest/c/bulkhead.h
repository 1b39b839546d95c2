/*
 * bulkhead.h: the C guest SDK of bulkhead. One header; include it and build
 * a reactor module with clang and wasi-libc:
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -Os -Wl,--strip-all \
 *         -I path/to/sdk-guest/c -o node.wasm node.c
 *
 * A node exports functions that take nothing and return a code:
 *
 *   #include "bulkhead.h"
 *
 *   BH_EXPORT(run) int32_t run(void) {
 *       bh_buf in = bh_input();
 *       if (in.len == 0) return bh_fail_permanent("empty input");
 *       bh_output(in.ptr, in.len);
 *       bh_buf_free(&in);
 *       return BH_CODE_OK;
 *   }
 *
 * Return BH_CODE_OK after bh_output, or the code bh_fail (retryable) or
 * bh_fail_permanent (never retried) returns. A trap (__builtin_trap, abort)
 * makes the host discard the instance and retry on a fresh one.
 *
 * Buffers the SDK returns (bh_buf) are malloc'd and NUL-terminated one byte
 * past len, so text can be used as a C string; free them with bh_buf_free.
 * bh_buf_append and friends build one (start from bh_buf b = {0}).
 * Data crosses the ABI eight bytes per host call. The import declarations
 * and BH_* constants live in bulkhead_abi.h, generated from the Go package
 * abi by `go generate ./abi`.
 */
#ifndef BULKHEAD_H
#define BULKHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulkhead_abi.h"

#define BH_UNUSED __attribute__((unused))

/* BH_EXPORT(name) exports the function that follows as "name". */
#define BH_EXPORT(name) __attribute__((export_name(#name)))

/* A malloc'd byte buffer, NUL-terminated at ptr[len]. */
typedef struct {
    uint8_t *ptr;
    size_t len;
} bh_buf;

static BH_UNUSED void bh_buf_free(bh_buf *b) {
    free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
}

/* bh_buf_append appends len bytes to *b (a zero bh_buf is an empty one),
 * keeping it NUL-terminated. */
static BH_UNUSED void bh_buf_append(bh_buf *b, const void *data, size_t len) {
    uint8_t *p = (uint8_t *)realloc(b->ptr, b->len + len + 1);
    if (p == NULL) __builtin_trap();
    memcpy(p + b->len, data, len);
    b->ptr = p;
    b->len += len;
    b->ptr[b->len] = 0;
}

static BH_UNUSED void bh_buf_append_str(bh_buf *b, const char *s) { bh_buf_append(b, s, strlen(s)); }

/* bh_buf_append_int appends v in decimal. */
static BH_UNUSED void bh_buf_append_int(bh_buf *b, int64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    bh_buf_append(b, tmp, (size_t)n);
}

/* ---- Extism memory blocks ---------------------------------------------- */

static BH_UNUSED bh_buf bh__alloc_buf(size_t n) {
    bh_buf b = {(uint8_t *)malloc(n + 1), n};
    if (b.ptr == NULL) __builtin_trap();
    b.ptr[n] = 0;
    return b;
}

/* bh_block_write copies data into a new Extism block in one host call and
 * returns its handle (0 for no data, or when the memory cap leaves no room). */
static BH_UNUSED uint64_t bh_block_write(const void *data, size_t len) {
    if (len == 0) return 0;
    return bh_host_block_write((uint64_t)(uintptr_t)data, (uint64_t)len);
}

static BH_UNUSED uint64_t bh_block_write_str(const char *s) { return bh_block_write(s, strlen(s)); }

/* bh_block_read copies the Extism block at handle h into a new buffer. */
static BH_UNUSED bh_buf bh_block_read(uint64_t h) {
    size_t n = h ? (size_t)bh_extism_length(h) : 0;
    bh_buf b = bh__alloc_buf(n);
    if (n > 0) bh_host_block_read(h, (uint64_t)(uintptr_t)b.ptr);
    return b;
}

/* ---- Input, output, errors --------------------------------------------- */

/* bh_input returns the call's input. */
static BH_UNUSED bh_buf bh_input(void) {
    size_t n = (size_t)bh_extism_input_length();
    bh_buf b = bh__alloc_buf(n);
    if (n > 0) bh_host_input_read((uint64_t)(uintptr_t)b.ptr);
    return b;
}

/* bh_output sets the call's output. */
static BH_UNUSED void bh_output(const void *data, size_t len) {
    bh_extism_output_set(bh_block_write(data, len), (uint64_t)len);
}

static BH_UNUSED void bh_output_str(const char *s) { bh_output(s, strlen(s)); }

/* bh_failn sets the call's error message and returns code. */
static BH_UNUSED int32_t bh_failn(int32_t code, const void *msg, size_t len) {
    bh_extism_error_set(bh_block_write(msg, len));
    return code;
}

/* bh_fail sets a retryable failure and returns BH_CODE_RETRYABLE. */
static BH_UNUSED int32_t bh_fail(const char *msg) { return bh_failn(BH_CODE_RETRYABLE, msg, strlen(msg)); }

/* bh_fail_permanent sets a failure no attempt can fix (bad input) and
 * returns BH_CODE_PERMANENT. */
static BH_UNUSED int32_t bh_fail_permanent(const char *msg) {
    return bh_failn(BH_CODE_PERMANENT, msg, strlen(msg));
}

/* ---- Config, vars, logging --------------------------------------------- */

/* bh_config sets *out to the value of a config key and returns true, or
 * returns false when the key is unset. */
static BH_UNUSED bool bh_config(const char *key, bh_buf *out) {
    uint64_t k = bh_block_write_str(key);
    uint64_t h = bh_extism_config_get(k);
    bh_extism_free(k);
    if (h == 0) return false;
    *out = bh_block_read(h);
    bh_extism_free(h);
    return true;
}

/* bh_var sets *out to a variable of this instance and returns true, or
 * returns false when it is unset. Vars live as long as the instance. */
static BH_UNUSED bool bh_var(const char *key, bh_buf *out) {
    uint64_t h = bh_extism_var_get(bh_block_write_str(key)); /* the host frees the key */
    if (h == 0) return false;
    *out = bh_block_read(h);
    bh_extism_free(h);
    return true;
}

/* bh_set_var sets a variable of this instance. */
static BH_UNUSED void bh_set_var(const char *key, const void *value, size_t len) {
    bh_extism_var_set(bh_block_write_str(key), bh_block_write(value, len)); /* the host frees both */
}

/* bh_delete_var deletes a variable of this instance. */
static BH_UNUSED void bh_delete_var(const char *key) { bh_extism_var_set(bh_block_write_str(key), 0); }

typedef enum { BH_LOG_TRACE, BH_LOG_DEBUG, BH_LOG_INFO, BH_LOG_WARN, BH_LOG_ERROR } bh_level;

/* bh_logn writes a line to the host's logger. The host drops trace lines. */
static BH_UNUSED void bh_logn(bh_level level, const void *msg, size_t len) {
    uint64_t h = bh_block_write(msg, len); /* the host frees it */
    switch (level) {
    case BH_LOG_TRACE: bh_extism_log_trace(h); break;
    case BH_LOG_DEBUG: bh_extism_log_debug(h); break;
    case BH_LOG_WARN: bh_extism_log_warn(h); break;
    case BH_LOG_ERROR: bh_extism_log_error(h); break;
    default: bh_extism_log_info(h); break;
    }
}

static BH_UNUSED void bh_log(bh_level level, const char *msg) { bh_logn(level, msg, strlen(msg)); }

/* ---- A little JSON: flat-object lookups and string quoting ------------- */

static BH_UNUSED const char *bh__ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* bh__skip returns the end of the JSON value at p, or NULL if malformed. */
static BH_UNUSED const char *bh__skip(const char *p, const char *end, int depth) {
    p = bh__ws(p, end);
    if (p >= end || depth > 64) return NULL;
    if (*p == '"') {
        for (p++; p < end; p++) {
            if (*p == '\\') p++;
            else if (*p == '"') return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        bool obj = *p == '{';
        p = bh__ws(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (obj) {
                p = bh__skip(p, end, depth + 1);
                if (p == NULL) return NULL;
                p = bh__ws(p, end);
                if (p >= end || *p != ':') return NULL;
                p++;
            }
            p = bh__skip(p, end, depth + 1);
            if (p == NULL) return NULL;
            p = bh__ws(p, end);
            if (p < end && *p == ',') { p++; continue; }
            if (p < end && *p == close) return p + 1;
            return NULL;
        }
    }
    const char *start = p;
    while (p < end && (strchr("+-.eE", *p) || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z'))) p++;
    return p > start ? p : NULL;
}

/* bh_json_find finds key in the top-level JSON object json[0:len] and sets
 * *val and *vlen to its raw value. It returns false when the key is absent
 * or json is not an object. */
static BH_UNUSED bool bh_json_find(const void *json, size_t len, const char *key, const char **val, size_t *vlen) {
    const char *p = (const char *)json, *end = p + len;
    size_t klen = strlen(key);
    p = bh__ws(p, end);
    if (p >= end || *p != '{') return false;
    p = bh__ws(p + 1, end);
    if (p < end && *p == '}') return false;
    for (;;) {
        const char *ks = bh__ws(p, end);
        if (ks >= end || *ks != '"') return false;
        const char *ke = bh__skip(ks, end, 0);
        if (ke == NULL) return false;
        p = bh__ws(ke, end);
        if (p >= end || *p != ':') return false;
        const char *vs = bh__ws(p + 1, end);
        const char *ve = bh__skip(vs, end, 0);
        if (ve == NULL) return false;
        if ((size_t)(ke - ks - 2) == klen && memcmp(ks + 1, key, klen) == 0) {
            *val = vs;
            *vlen = (size_t)(ve - vs);
            return true;
        }
        p = bh__ws(ve, end);
        if (p < end && *p == ',') { p++; continue; }
        return false;
    }
}

/* bh_json_valid reports whether json[0:len] is one well-formed JSON value. */
static BH_UNUSED bool bh_json_valid(const void *json, size_t len) {
    const char *p = (const char *)json, *end = p + len;
    p = bh__skip(p, end, 0);
    return p != NULL && bh__ws(p, end) == end;
}

/* bh_json_int reads an integer member of a top-level JSON object. */
static BH_UNUSED bool bh_json_int(const void *json, size_t len, const char *key, int64_t *out) {
    const char *v;
    size_t n;
    if (!bh_json_find(json, len, key, &v, &n) || n == 0 || n > 20) return false;
    char tmp[24];
    memcpy(tmp, v, n);
    tmp[n] = 0;
    char *e;
    long long x = strtoll(tmp, &e, 10);
    if (*e != 0) return false;
    *out = (int64_t)x;
    return true;
}

static BH_UNUSED void bh__utf8(bh_buf *b, uint32_t c) {
    if (c < 0x80) b->ptr[b->len++] = (uint8_t)c;
    else if (c < 0x800) {
        b->ptr[b->len++] = (uint8_t)(0xC0 | (c >> 6));
        b->ptr[b->len++] = (uint8_t)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        b->ptr[b->len++] = (uint8_t)(0xE0 | (c >> 12));
        b->ptr[b->len++] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        b->ptr[b->len++] = (uint8_t)(0x80 | (c & 0x3F));
    } else {
        b->ptr[b->len++] = (uint8_t)(0xF0 | (c >> 18));
        b->ptr[b->len++] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
        b->ptr[b->len++] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        b->ptr[b->len++] = (uint8_t)(0x80 | (c & 0x3F));
    }
}

static BH_UNUSED uint32_t bh__hex4(const char *p) {
    uint32_t c = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        c = c * 16 + (uint32_t)(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
    }
    return c;
}

/* bh_json_string reads a string member of a top-level JSON object,
 * unescaped, into a new buffer. */
static BH_UNUSED bool bh_json_string(const void *json, size_t len, const char *key, bh_buf *out) {
    const char *v;
    size_t n;
    if (!bh_json_find(json, len, key, &v, &n) || n < 2 || v[0] != '"') return false;
    bh_buf b = bh__alloc_buf(n);
    b.len = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        char ch = v[i];
        if (ch != '\\') { b.ptr[b.len++] = (uint8_t)ch; continue; }
        ch = v[++i];
        switch (ch) {
        case 'n': b.ptr[b.len++] = '\n'; break;
        case 't': b.ptr[b.len++] = '\t'; break;
        case 'r': b.ptr[b.len++] = '\r'; break;
        case 'b': b.ptr[b.len++] = '\b'; break;
        case 'f': b.ptr[b.len++] = '\f'; break;
        case 'u': {
            if (i + 4 >= n) { bh_buf_free(&b); return false; }
            uint32_t c = bh__hex4(v + i + 1);
            i += 4;
            if (c >= 0xD800 && c < 0xDC00 && i + 6 < n && v[i + 1] == '\\' && v[i + 2] == 'u') {
                c = 0x10000 + ((c - 0xD800) << 10) + (bh__hex4(v + i + 3) - 0xDC00);
                i += 6;
            }
            bh__utf8(&b, c);
            break;
        }
        default: b.ptr[b.len++] = (uint8_t)ch; break;
        }
    }
    b.ptr[b.len] = 0;
    *out = b;
    return true;
}

/* bh_json_quote appends s as a JSON string literal (with quotes) to *b. */
static BH_UNUSED void bh_json_quote(bh_buf *b, const char *s) {
    bh_buf_append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            bh_buf_append(b, esc, 2);
        } else if (ch < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            bh_buf_append(b, esc, 6);
        } else {
            bh_buf_append(b, s, 1);
        }
    }
    bh_buf_append(b, "\"", 1);
}

/* ---- Invocation, retry hints ------------------------------------------- */

/* What the host says about the current call. The strings are malloc'd;
 * free them with bh_invocation_free. */
typedef struct {
    char *run_id;
    char *workflow;
    char *node;
    int64_t attempt; /* counts from 1 */
    char *idempotency_key;
    int64_t deadline_unix_ms; /* 0 when the call has no deadline */
    char *plugin;
    char *plugin_version;
} bh_invocation_t;

static BH_UNUSED char *bh__field(const bh_buf *j, const char *key) {
    bh_buf s;
    if (!bh_json_string(j->ptr, j->len, key, &s)) {
        s = bh__alloc_buf(0);
    }
    return (char *)s.ptr;
}

/* bh_invocation fills *inv and returns true, or false when the host gave no
 * invocation info. */
static BH_UNUSED bool bh_invocation(bh_invocation_t *inv) {
    uint64_t h = bh_host_invocation();
    if (h == 0) return false;
    bh_buf j = bh_block_read(h);
    bh_extism_free(h);
    inv->run_id = bh__field(&j, "run_id");
    inv->workflow = bh__field(&j, "workflow");
    inv->node = bh__field(&j, "node");
    inv->idempotency_key = bh__field(&j, "idempotency_key");
    inv->plugin = bh__field(&j, "plugin");
    inv->plugin_version = bh__field(&j, "plugin_version");
    inv->attempt = 0;
    inv->deadline_unix_ms = 0;
    bh_json_int(j.ptr, j.len, "attempt", &inv->attempt);
    bh_json_int(j.ptr, j.len, "deadline_unix_ms", &inv->deadline_unix_ms);
    bh_buf_free(&j);
    return true;
}

static BH_UNUSED void bh_invocation_free(bh_invocation_t *inv) {
    free(inv->run_id);
    free(inv->workflow);
    free(inv->node);
    free(inv->idempotency_key);
    free(inv->plugin);
    free(inv->plugin_version);
    memset(inv, 0, sizeof *inv);
}

/* bh_retry_after hints the host to wait ms milliseconds before the next
 * attempt of this call (for example after an HTTP 429). */
static BH_UNUSED void bh_retry_after(uint64_t ms) { bh_host_retry_after(ms); }

/* ---- Durable functions: checkpoints, plugin state, progress ------------ */

/* bh_checkpoint_save durably stores data as this node's newest checkpoint.
 * It returns 0 once the bytes are durable, a non-zero code otherwise. */
static BH_UNUSED int32_t bh_checkpoint_save(const void *data, size_t len) {
    uint64_t h = bh_block_write(data, len);
    int32_t rc = bh_host_checkpoint_save(h);
    bh_extism_free(h);
    return rc;
}

/* bh_checkpoint_load sets *out to this node's newest checkpoint and returns
 * true, or returns false when there is none. */
static BH_UNUSED bool bh_checkpoint_load(bh_buf *out) {
    uint64_t h = bh_host_checkpoint_load();
    if (h == 0) return false;
    *out = bh_block_read(h);
    bh_extism_free(h);
    return true;
}

/* bh_state_get sets *out to the value of key in the plugin's durable state
 * and returns true, or returns false when it is unset. */
static BH_UNUSED bool bh_state_get(const char *key, bh_buf *out) {
    uint64_t k = bh_block_write_str(key);
    uint64_t h = bh_host_state_get(k);
    bh_extism_free(k);
    if (h == 0) return false;
    *out = bh_block_read(h);
    bh_extism_free(h);
    return true;
}

/* bh_state_set durably sets key; it returns 0 on success. */
static BH_UNUSED int32_t bh_state_set(const char *key, const void *value, size_t len) {
    uint64_t k = bh_block_write_str(key), v = bh_block_write(value, len);
    int32_t rc = bh_host_state_set(k, v);
    bh_extism_free(k);
    bh_extism_free(v);
    return rc;
}

/* bh_state_delete deletes key; it returns 0 on success, also when unset. */
static BH_UNUSED int32_t bh_state_delete(const char *key) {
    uint64_t k = bh_block_write_str(key);
    int32_t rc = bh_host_state_delete(k);
    bh_extism_free(k);
    return rc;
}

/* bh_progress reports how far this node is. */
static BH_UNUSED void bh_progress(int64_t done, int64_t total, const char *message) {
    bh_buf j = {0};
    bh_buf_append_str(&j, "{\"done\":");
    bh_buf_append_int(&j, done);
    bh_buf_append_str(&j, ",\"total\":");
    bh_buf_append_int(&j, total);
    if (message != NULL && *message) {
        bh_buf_append_str(&j, ",\"message\":");
        bh_json_quote(&j, message);
    }
    bh_buf_append_str(&j, "}");
    uint64_t h = bh_block_write(j.ptr, j.len);
    bh_host_progress(h);
    bh_extism_free(h);
    bh_buf_free(&j);
}

#endif /* BULKHEAD_H */
