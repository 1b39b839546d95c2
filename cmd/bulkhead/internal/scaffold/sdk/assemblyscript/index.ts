// The AssemblyScript guest SDK of bulkhead: it turns an AssemblyScript
// module into a bulkhead node (an Extism-ABI module) built with `asc`.
//
// A node exports functions that take nothing and return a code:
//
//   import * as bulkhead from "bulkhead-sdk/assembly";
//
//   function onAbort(m: string | null, f: string | null, l: u32, c: u32): void {
//     bulkhead.abort(m, f, l, c);
//   }
//
//   export function run(): i32 {
//     const name = bulkhead.inputString();
//     if (name.length == 0) return bulkhead.failPermanent("empty input");
//     bulkhead.outputString("hello, " + name);
//     return bulkhead.CODE_OK;
//   }
//
// and builds with `asc node.ts --optimize --use abort=node/onAbort -o node.wasm`
// (the Extism host has no "env.abort"; the SDK's abort logs the message at
// error level and traps). Return CODE_OK after an output, or what fail
// (retryable) or failPermanent (never retried) returns. A trap makes the
// host discard the instance and retry on a fresh one.
//
// Payloads cross the ABI in one host call each (bulkhead:host/v1
// input_read, block_read, block_write). The raw imports and
// constants in abi.ts are generated from the Go package abi by
// `go generate ./abi`. The SDK can be used beside the upstream
// @extism/as-pdk: both import the same Extism functions.

import {
  extism_alloc, extism_free, extism_length, extism_load_u8, extism_load_u64,
  extism_store_u8, extism_store_u64, extism_input_length, extism_input_load_u8,
  extism_input_load_u64, extism_output_set, extism_error_set, extism_config_get,
  extism_var_get, extism_var_set, extism_log_trace, extism_log_debug,
  extism_log_info, extism_log_warn, extism_log_error,
  host_invocation, host_retry_after, host_checkpoint_save, host_checkpoint_load,
  host_state_get, host_state_set, host_state_delete, host_progress,
  host_input_read, host_block_read, host_block_write,
  CODE_RETRYABLE, CODE_PERMANENT,
} from "./abi";

export * from "./abi";

// ---- Extism memory blocks ------------------------------------------------

/** Copies bytes into a new Extism block and returns its handle (0 for no
 * bytes, or when the memory cap leaves no room). */
export function writeBlock(b: Uint8Array): u64 {
  if (b.length == 0) return 0;
  return host_block_write(<u64>b.dataStart, <u64>b.length);
}

/** Copies a string, UTF-8 encoded, into a new Extism block. */
export function writeString(s: string): u64 {
  return writeBlock(Uint8Array.wrap(String.UTF8.encode(s)));
}

/** Copies the Extism block at handle h out and frees it; null for handle 0. */
export function takeBlock(h: u64): Uint8Array | null {
  if (h == 0) return null;
  const n = extism_length(h);
  const b = new Uint8Array(<i32>n);
  if (n > 0) host_block_read(h, <u64>b.dataStart);
  extism_free(h);
  return b;
}

function decode(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, <usize>b.length);
}

// ---- Input, output, errors -----------------------------------------------

/** The call's input. */
export function input(): Uint8Array {
  const n = extism_input_length();
  const b = new Uint8Array(<i32>n);
  if (n > 0) host_input_read(<u64>b.dataStart);
  return b;
}

/** The call's input as UTF-8 text. */
export function inputString(): string {
  return decode(input());
}

/** Sets the call's output. */
export function output(b: Uint8Array): void {
  extism_output_set(writeBlock(b), <u64>b.length);
}

/** Sets the call's output to a string, UTF-8 encoded. */
export function outputString(s: string): void {
  output(Uint8Array.wrap(String.UTF8.encode(s)));
}

/** Sets the call's error message and returns code. */
export function failBytes(code: i32, message: Uint8Array): i32 {
  extism_error_set(writeBlock(message));
  return code;
}

/** Sets a retryable failure and returns CODE_RETRYABLE. */
export function fail(message: string): i32 {
  extism_error_set(writeString(message));
  return CODE_RETRYABLE;
}

/** Sets a failure no attempt can fix (bad input) and returns CODE_PERMANENT. */
export function failPermanent(message: string): i32 {
  extism_error_set(writeString(message));
  return CODE_PERMANENT;
}

// ---- Config, vars, logging -----------------------------------------------

/** The value of a config key, or null when it is unset. */
export function config(key: string): string | null {
  const k = writeString(key);
  const h = extism_config_get(k);
  extism_free(k);
  const b = takeBlock(h);
  return b == null ? null : decode(b);
}

/** A variable of this instance, or null when unset. */
export function getVar(key: string): Uint8Array | null {
  return takeBlock(extism_var_get(writeString(key))); // the host frees the key
}

/** Sets a variable of this instance. */
export function setVar(key: string, value: Uint8Array): void {
  extism_var_set(writeString(key), writeBlock(value)); // the host frees both
}

/** Deletes a variable of this instance. */
export function deleteVar(key: string): void {
  extism_var_set(writeString(key), 0);
}

/** Log levels. The host drops trace lines. */
export enum Level { Trace, Debug, Info, Warn, Error }

/** Writes a line to the host's logger. */
export function log(level: Level, message: string): void {
  const h = writeString(message); // the host frees it
  switch (level) {
    case Level.Trace: extism_log_trace(h); break;
    case Level.Debug: extism_log_debug(h); break;
    case Level.Warn: extism_log_warn(h); break;
    case Level.Error: extism_log_error(h); break;
    default: extism_log_info(h);
  }
}

/**
 * The SDK's abort handler: call it from a function of the entry file that
 * asc is told to use, `--use abort=<entry>/onAbort`. It logs the message at
 * error level and traps.
 */
export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let s = "abort: " + (message == null ? "" : message);
  if (fileName != null) s += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  log(Level.Error, s);
  unreachable();
}

// ---- A little JSON -------------------------------------------------------

/**
 * The top-level members of a JSON object, each kept as raw JSON text. Enough
 * to read flat documents such as the invocation info without a dependency.
 */
export class JSONObject {
  private raw: Map<string, string> = new Map<string, string>();

  /** Parses an object; null when s is not exactly one JSON object. */
  static parse(s: string): JSONObject | null {
    const p = new Scanner(s);
    const o = new JSONObject();
    p.ws();
    if (!p.eat(0x7b)) return null; // {
    p.ws();
    if (!p.eat(0x7d)) {
      while (true) {
        p.ws();
        const ks = p.i;
        if (!p.skip(0)) return null;
        const key = unquote(s.substring(ks, p.i));
        if (key == null) return null;
        p.ws();
        if (!p.eat(0x3a)) return null; // :
        p.ws();
        const vs = p.i;
        if (!p.skip(0)) return null;
        o.raw.set(key, s.substring(vs, p.i));
        p.ws();
        if (p.eat(0x2c)) continue; // ,
        if (p.eat(0x7d)) break; // }
        return null;
      }
    }
    p.ws();
    return p.i == s.length ? o : null;
  }

  has(key: string): bool {
    return this.raw.has(key);
  }

  /** The raw JSON text of a member, or null. */
  getRaw(key: string): string | null {
    return this.raw.has(key) ? this.raw.get(key) : null;
  }

  /** A string member, unescaped, or null when absent or not a string. */
  getString(key: string): string | null {
    if (!this.raw.has(key)) return null;
    return unquote(this.raw.get(key));
  }

  /** Whether a member is an integer. */
  isInt(key: string): bool {
    if (!this.raw.has(key)) return false;
    const v = this.raw.get(key);
    let i = v.charCodeAt(0) == 0x2d ? 1 : 0;
    if (i >= v.length) return false;
    for (; i < v.length; i++) {
      const c = v.charCodeAt(i);
      if (c < 0x30 || c > 0x39) return false;
    }
    return true;
  }

  /** An integer member, or 0 when absent or not an integer. */
  getInt(key: string): i64 {
    return this.isInt(key) ? I64.parseInt(this.raw.get(key), 10) : 0;
  }
}

class Scanner {
  i: i32 = 0;
  constructor(public s: string) {}

  ws(): void {
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) return;
      this.i++;
    }
  }

  eat(c: i32): bool {
    if (this.i < this.s.length && this.s.charCodeAt(this.i) == c) {
      this.i++;
      return true;
    }
    return false;
  }

  // skip moves past one JSON value and reports whether it was well formed.
  skip(depth: i32): bool {
    if (depth > 64 || this.i >= this.s.length) return false;
    const c = this.s.charCodeAt(this.i);
    if (c == 0x22) { // "
      for (this.i++; this.i < this.s.length; this.i++) {
        const d = this.s.charCodeAt(this.i);
        if (d == 0x5c) this.i++;
        else if (d == 0x22) { this.i++; return true; }
      }
      return false;
    }
    if (c == 0x7b || c == 0x5b) { // { [
      const close = c == 0x7b ? 0x7d : 0x5d;
      this.i++;
      this.ws();
      if (this.eat(close)) return true;
      while (true) {
        this.ws();
        if (c == 0x7b) {
          if (!this.skip(depth + 1)) return false;
          this.ws();
          if (!this.eat(0x3a)) return false;
          this.ws();
        }
        if (!this.skip(depth + 1)) return false;
        this.ws();
        if (this.eat(0x2c)) continue;
        return this.eat(close);
      }
    }
    const start = this.i;
    while (this.i < this.s.length) {
      const d = this.s.charCodeAt(this.i);
      const word = (d >= 0x30 && d <= 0x39) || (d >= 0x61 && d <= 0x7a) || d == 0x2d || d == 0x2b || d == 0x2e || d == 0x45;
      if (!word) break;
      this.i++;
    }
    return this.i > start;
  }
}

/** Unescapes a JSON string literal (with its quotes); null if it is not one. */
export function unquote(q: string): string | null {
  if (q.length < 2 || q.charCodeAt(0) != 0x22 || q.charCodeAt(q.length - 1) != 0x22) return null;
  let out = "";
  for (let i = 1; i < q.length - 1; i++) {
    const c = q.charCodeAt(i);
    if (c != 0x5c) { out += String.fromCharCode(c); continue; }
    const e = q.charCodeAt(++i);
    if (e == 0x6e) out += "\n";
    else if (e == 0x74) out += "\t";
    else if (e == 0x72) out += "\r";
    else if (e == 0x62) out += "\b";
    else if (e == 0x66) out += "\f";
    else if (e == 0x75) { // \uXXXX: UTF-16 code units, surrogates pass through
      out += String.fromCharCode(<i32>I32.parseInt(q.substring(i + 1, i + 5), 16));
      i += 4;
    } else out += String.fromCharCode(e);
  }
  return out;
}

/** Quotes s as a JSON string literal. */
export function quote(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20) out += "\\u00" + (c < 0x10 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

// ---- Invocation, retry hints ---------------------------------------------

/** What the host says about the current call. */
export class Invocation {
  runId: string = "";
  workflow: string = "";
  node: string = "";
  /** Counts from 1. */
  attempt: i64 = 0;
  /** Shared by every attempt of a node in a run ("run/node"). */
  idempotencyKey: string = "";
  /** 0 when the call has no deadline. */
  deadlineUnixMs: i64 = 0;
  plugin: string = "";
  pluginVersion: string = "";

  /** The invocation as the JSON the host sent. */
  toJSON(): string {
    return "{\"run_id\":" + quote(this.runId) +
      ",\"workflow\":" + quote(this.workflow) +
      ",\"node\":" + quote(this.node) +
      ",\"attempt\":" + this.attempt.toString() +
      ",\"idempotency_key\":" + quote(this.idempotencyKey) +
      ",\"deadline_unix_ms\":" + this.deadlineUnixMs.toString() +
      ",\"plugin\":" + quote(this.plugin) +
      ",\"plugin_version\":" + quote(this.pluginVersion) + "}";
  }
}

function str(o: JSONObject, key: string): string {
  const s = o.getString(key);
  return s == null ? "" : s;
}

/** The run, workflow, node, attempt, idempotency key, deadline and plugin
 * version of the current call, or null when the host gave none. */
export function invocation(): Invocation | null {
  const b = takeBlock(host_invocation());
  if (b == null) return null;
  const o = JSONObject.parse(decode(b));
  if (o == null) return null;
  const j = o;
  const inv = new Invocation();
  inv.runId = str(j, "run_id");
  inv.workflow = str(j, "workflow");
  inv.node = str(j, "node");
  inv.attempt = j.getInt("attempt");
  inv.idempotencyKey = str(j, "idempotency_key");
  inv.deadlineUnixMs = j.getInt("deadline_unix_ms");
  inv.plugin = str(j, "plugin");
  inv.pluginVersion = str(j, "plugin_version");
  return inv;
}

/** Hints the host to wait ms milliseconds before the next attempt. */
export function retryAfter(ms: u64): void {
  host_retry_after(ms);
}

// ---- Durable functions: checkpoints, plugin state, progress --------------

/** Durably stores b as this node's newest checkpoint; 0 once durable. */
export function saveCheckpoint(b: Uint8Array): i32 {
  const h = writeBlock(b);
  const rc = host_checkpoint_save(h);
  extism_free(h);
  return rc;
}

/** This node's newest checkpoint, or null. */
export function loadCheckpoint(): Uint8Array | null {
  return takeBlock(host_checkpoint_load());
}

/** The value of key in the plugin's durable state, or null. */
export function getState(key: string): Uint8Array | null {
  const k = writeString(key);
  const h = host_state_get(k);
  extism_free(k);
  return takeBlock(h);
}

/** Durably sets key in the plugin's state; 0 on success. */
export function setState(key: string, value: Uint8Array): i32 {
  const k = writeString(key);
  const v = writeBlock(value);
  const rc = host_state_set(k, v);
  extism_free(k);
  extism_free(v);
  return rc;
}

/** Deletes key from the plugin's state; 0 on success, also when unset. */
export function deleteState(key: string): i32 {
  const k = writeString(key);
  const rc = host_state_delete(k);
  extism_free(k);
  return rc;
}

/** Reports how far this node is. */
export function progress(done: i64, total: i64, message: string): void {
  let s = "{\"done\":" + done.toString() + ",\"total\":" + total.toString();
  if (message.length > 0) s += ",\"message\":" + quote(message);
  const h = writeString(s + "}");
  host_progress(h);
  extism_free(h);
}
