// kitchen.ts: a node built with the upstream Extism AssemblyScript PDK
// (@extism/as-pdk), not bulkhead's SDK. It proves that bulkhead runs plain
// Extism plugins: it has the conformance exports that need no bulkhead host
// function, and must behave the same under bulkhead and under Extism's own
// go-sdk runtime.
//
// Build (from this directory, after `npm ci`; `make -C testdata upstream`
// does both):
//
//   node_modules/.bin/asc kitchen.ts --optimize --use abort=kitchen/myAbort -o kitchen.wasm

import { Config, Host, LogLevel, Memory, Var } from "@extism/as-pdk";
import { error_set } from "@extism/as-pdk/lib/env";

function myAbort(message: string | null, fileName: string | null, lineNumber: u32, columnNumber: u32): void {
  unreachable();
}

function failWith(code: i32, msg: string): i32 {
  error_set(Memory.allocateString(msg).offset);
  return code;
}

export function echo(): i32 {
  Host.output(Host.input());
  return 0;
}

// json parses {"a":int,"b":int} by hand: the PDK has no JSON.
export function json(): i32 {
  const s = Host.inputString().replaceAll(" ", "").replaceAll("\n", "").replaceAll("\t", "");
  if (s.length < 2 || s.charAt(0) != "{" || s.charAt(s.length - 1) != "}") {
    return failWith(2, "decode input: not a JSON object");
  }
  let a: i64 = 0, b: i64 = 0, seen = 0;
  const members = s.substring(1, s.length - 1).split(",");
  for (let i = 0; i < members.length; i++) {
    const kv = members[i].split(":");
    if (kv.length != 2) return failWith(2, "decode input: bad member");
    const v = kv[1];
    for (let j = 0; j < v.length; j++) {
      const c = v.charCodeAt(j);
      if (!(c >= 0x30 && c <= 0x39) && !(j == 0 && c == 0x2d && v.length > 1)) return failWith(2, "decode input: not an integer");
    }
    if (v.length == 0) return failWith(2, "decode input: not an integer");
    if (kv[0] == "\"a\"") { a = I64.parseInt(v, 10); seen |= 1; }
    if (kv[0] == "\"b\"") { b = I64.parseInt(v, 10); seen |= 2; }
  }
  if (seen != 3) return failWith(2, "decode input: want a and b");
  Host.output(Uint8Array.wrap(String.UTF8.encode("{\"sum\":" + (a + b).toString() + "}")));
  return 0;
}

export function config(): i32 {
  const key = Host.inputString();
  const v = Config.get(key);
  if (v == null) return failWith(2, "config key \"" + key + "\" is not set");
  Host.output(Uint8Array.wrap(String.UTF8.encode(v)));
  return 0;
}

export function var_incr(): i32 {
  const v = Var.getString("count");
  let n: i64 = 0;
  if (v != null) n = I64.parseInt(v, 10);
  const s = (n + 1).toString();
  Var.set("count", Uint8Array.wrap(String.UTF8.encode(s)));
  Host.output(Uint8Array.wrap(String.UTF8.encode(s)));
  return 0;
}

export function log(): i32 {
  const line = Host.inputString();
  Host.log(LogLevel.Debug, line);
  Host.log(LogLevel.Info, line);
  Host.log(LogLevel.Warn, line);
  Host.log(LogLevel.Error, line);
  return 0;
}

export function fail(): i32 {
  return failWith(1, Host.inputString());
}

export function fail_permanent(): i32 {
  return failWith(2, Host.inputString());
}

export function trap(): i32 {
  unreachable();
  return 0;
}
