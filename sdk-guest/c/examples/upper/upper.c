/*
 * upper is an example bulkhead node: it upper-cases its input.
 *
 * Build (from this directory): make
 *   (clang --target=wasm32-wasi -mexec-model=reactor -Os -Wl,--strip-all -I../.. -o upper.wasm upper.c)
 */
#include <ctype.h>

#include "bulkhead.h"

BH_EXPORT(run) int32_t run(void) {
    bh_buf in = bh_input();
    if (in.len == 0) {
        bh_buf_free(&in);
        return bh_fail_permanent("empty input");
    }
    char msg[64];
    snprintf(msg, sizeof msg, "upper-casing %zu bytes", in.len);
    bh_log(BH_LOG_INFO, msg);
    for (size_t i = 0; i < in.len; i++) in.ptr[i] = (uint8_t)toupper(in.ptr[i]);
    bh_output(in.ptr, in.len);
    bh_buf_free(&in);
    return BH_CODE_OK;
}
