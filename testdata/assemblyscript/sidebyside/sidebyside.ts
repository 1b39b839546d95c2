// sidebyside.ts: one node that uses bulkhead's AssemblyScript SDK and the
// upstream Extism PDK (@extism/as-pdk) together. Input, output, vars and
// errors go through the upstream PDK; the invocation info and the retry
// hint, which the upstream PDK lacks, through bulkhead's SDK. Both import
// the same Extism functions, so they share one input, one output, one var
// store and one error slot.
//
// Build (from this directory, after `npm ci`; `make -C testdata assemblyscript`
// does both):
//
//   node_modules/.bin/asc sidebyside.ts --optimize --use abort=sidebyside/onAbort -o sidebyside.wasm

import { Host, Memory, Var } from "@extism/as-pdk";
import { error_set } from "@extism/as-pdk/lib/env";
import * as bulkhead from "../../../sdk-guest/assemblyscript/assembly/index";

// The Extism host has no "env.abort": asc routes aborts here.
function onAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  bulkhead.abort(message, fileName, line, column);
}

// both outputs {"input":…,"invocation":…}: the input as the upstream PDK
// read it and the invocation as bulkhead's SDK read it.
export function both(): i32 {
  const input = Host.inputString();
  const inv = bulkhead.invocation();
  if (inv == null) return bulkhead.fail("no invocation info");
  // Host.output with UTF-8 bytes, not Host.outputString: as-pdk 1.0.0's
  // outputString sizes the output in UTF-16 units and cuts non-ASCII text.
  const out = "{\"input\":" + bulkhead.quote(input) + ",\"invocation\":" + inv.toJSON() + "}";
  Host.output(Uint8Array.wrap(String.UTF8.encode(out)));
  return 0;
}

// retry_later hints the host (bulkhead's SDK) to wait the input's number of
// milliseconds and fails retryably with the upstream PDK's error slot.
export function retry_later(): i32 {
  const s = Host.inputString();
  if (s.length == 0) return bulkhead.failPermanent("input is not a number of milliseconds");
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return bulkhead.failPermanent("input is not a number of milliseconds");
  }
  bulkhead.retryAfter(U64.parseInt(s, 10));
  error_set(Memory.allocateString("busy, retry in " + s + " ms").offset);
  return bulkhead.CODE_RETRYABLE;
}

// shared_var stores the input with the upstream PDK's Var.set and outputs
// what bulkhead's getVar reads back, then the previous value bulkhead's
// getVar saw before the store ("none" the first time).
export function shared_var(): i32 {
  const prev = bulkhead.getVar("shared");
  Var.set("shared", Host.input());
  const got = bulkhead.getVar("shared");
  if (got == null) return bulkhead.failPermanent("var set with the upstream PDK is not visible to bulkhead's SDK");
  bulkhead.outputString(String.UTF8.decode(got.buffer) + ";prev=" + (prev == null ? "none" : String.UTF8.decode(prev.buffer)));
  return bulkhead.CODE_OK;
}
