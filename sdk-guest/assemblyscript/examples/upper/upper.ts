// upper is an example bulkhead node: it upper-cases its input.
//
// Build (from this directory): make (npx asc upper.ts --optimize --use abort=upper/onAbort -o upper.wasm)
import * as bulkhead from "../../assembly/index";

function onAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  bulkhead.abort(message, fileName, line, column);
}

export function run(): i32 {
  const s = bulkhead.inputString();
  if (s.length == 0) return bulkhead.failPermanent("empty input");
  bulkhead.log(bulkhead.Level.Info, "upper-casing " + s.length.toString() + " characters");
  bulkhead.outputString(s.toUpperCase());
  return bulkhead.CODE_OK;
}
