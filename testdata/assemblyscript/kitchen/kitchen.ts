// kitchen.ts: bulkhead's AssemblyScript conformance fixture, built with the
// AssemblyScript SDK.
//
// Build (from this directory, after `npm ci` in testdata/assemblyscript;
// `make -C testdata assemblyscript` does both):
//
//   ../node_modules/.bin/asc kitchen.ts --optimize --use abort=kitchen/onAbort -o kitchen.wasm

import * as bulkhead from "../../../sdk-guest/assemblyscript/assembly/index";

// The Extism host has no "env.abort": asc routes aborts here (--use abort=kitchen/onAbort).
function onAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  bulkhead.abort(message, fileName, line, column);
}

export function echo(): i32 {
  bulkhead.output(bulkhead.input());
  return bulkhead.CODE_OK;
}

export function json(): i32 {
  const o = bulkhead.JSONObject.parse(bulkhead.inputString());
  if (o == null || !o.isInt("a") || !o.isInt("b")) {
    return bulkhead.failPermanent("decode input: want {\"a\":int,\"b\":int}");
  }
  const sum = o.getInt("a") + o.getInt("b");
  bulkhead.outputString("{\"sum\":" + sum.toString() + "}");
  return bulkhead.CODE_OK;
}

export function config(): i32 {
  const key = bulkhead.inputString();
  const v = bulkhead.config(key);
  if (v == null) return bulkhead.failPermanent("config key " + bulkhead.quote(key) + " is not set");
  bulkhead.outputString(v);
  return bulkhead.CODE_OK;
}

export function var_incr(): i32 {
  const v = bulkhead.getVar("count");
  let n: i64 = 0;
  if (v != null) n = I64.parseInt(String.UTF8.decode(v.buffer), 10);
  const s = (n + 1).toString();
  bulkhead.setVar("count", Uint8Array.wrap(String.UTF8.encode(s)));
  bulkhead.outputString(s);
  return bulkhead.CODE_OK;
}

export function log(): i32 {
  const line = bulkhead.inputString();
  bulkhead.log(bulkhead.Level.Debug, line);
  bulkhead.log(bulkhead.Level.Info, line);
  bulkhead.log(bulkhead.Level.Warn, line);
  bulkhead.log(bulkhead.Level.Error, line);
  return bulkhead.CODE_OK;
}

export function fail(): i32 {
  return bulkhead.failBytes(bulkhead.CODE_RETRYABLE, bulkhead.input());
}

export function fail_permanent(): i32 {
  return bulkhead.failBytes(bulkhead.CODE_PERMANENT, bulkhead.input());
}

export function trap(): i32 {
  unreachable();
  return 0;
}

export function invocation(): i32 {
  const inv = bulkhead.invocation();
  if (inv == null) return bulkhead.fail("no invocation info");
  bulkhead.outputString(inv.toJSON());
  return bulkhead.CODE_OK;
}

export function retry_after(): i32 {
  const s = bulkhead.inputString();
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return bulkhead.failPermanent("input is not a number of milliseconds");
  }
  if (s.length == 0) return bulkhead.failPermanent("input is not a number of milliseconds");
  bulkhead.retryAfter(U64.parseInt(s, 10));
  return bulkhead.fail("rate limited");
}

function text(b: Uint8Array | null): string {
  return b == null ? "none" : String.UTF8.decode(b.buffer);
}

function bytes(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

// durable exercises checkpoints, plugin state and progress with the input
// as the key; it reports what it read as had=…;prev=…;got=…;after=….
export function durable(): i32 {
  const key = bulkhead.inputString();
  const had = text(bulkhead.loadCheckpoint());
  const rc = bulkhead.saveCheckpoint(bytes("cp:" + key));
  if (rc != 0) return bulkhead.fail("checkpoint not saved (code " + rc.toString() + ")");
  const prev = text(bulkhead.getState(key));
  if (bulkhead.setState(key, bytes("v:" + key)) != 0) return bulkhead.fail("state not set");
  const got = text(bulkhead.getState(key));
  if (bulkhead.deleteState(key) != 0) return bulkhead.fail("state not deleted");
  const after = text(bulkhead.getState(key));
  bulkhead.progress(1, 2, "half way \"" + key + "\"");
  bulkhead.outputString("had=" + had + ";prev=" + prev + ";got=" + got + ";after=" + after);
  return bulkhead.CODE_OK;
}
