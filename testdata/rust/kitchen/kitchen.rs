//! kitchen.rs: bulkhead's Rust conformance fixture, built with the Rust SDK.
//!
//! Build (from this directory; `make -C testdata rust` does it):
//!
//!   /usr/bin/rustc --edition 2021 --crate-type rlib --crate-name bulkhead --target wasm32-wasi -C opt-level=s -o target/libbulkhead.rlib ../../../sdk-guest/rust/src/lib.rs
//!   /usr/bin/rustc --edition 2021 --crate-type cdylib --target wasm32-wasi -C opt-level=s -C lto -C strip=symbols -L target --extern bulkhead -o kitchen.wasm kitchen.rs

use std::time::Duration;

use bulkhead::json::Value;
use bulkhead::Error;

#[no_mangle]
pub extern "C" fn echo() -> i32 {
    bulkhead::handle(|input| Ok(input.to_vec()))
}

#[no_mangle]
pub extern "C" fn json() -> i32 {
    bulkhead::handle_json(|v| {
        let field = |k: &str| v.get(k).and_then(Value::as_i64).ok_or_else(|| Error::permanent(format!("decode input: {} is not an integer", k)));
        let sum = field("a")? + field("b")?;
        Ok(Value::Object(vec![("sum".into(), Value::Int(sum))]))
    })
}

#[no_mangle]
pub extern "C" fn config() -> i32 {
    bulkhead::handle_str(|key| bulkhead::config(key).ok_or_else(|| Error::permanent(format!("config key {:?} is not set", key))))
}

#[no_mangle]
pub extern "C" fn var_incr() -> i32 {
    bulkhead::handle(|_| {
        let n: i64 = bulkhead::var("count").and_then(|b| String::from_utf8(b).ok()).and_then(|s| s.parse().ok()).unwrap_or(0);
        let s = (n + 1).to_string();
        bulkhead::set_var("count", s.as_bytes());
        Ok(s)
    })
}

#[no_mangle]
pub extern "C" fn log() -> i32 {
    use bulkhead::Level::*;
    bulkhead::handle_str(|line| {
        for level in [Debug, Info, Warn, Error] {
            bulkhead::log(level, line);
        }
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn fail() -> i32 {
    bulkhead::handle_str(|msg| Err::<(), _>(Error::retryable(msg)))
}

#[no_mangle]
pub extern "C" fn fail_permanent() -> i32 {
    bulkhead::handle_str(|msg| Err::<(), _>(Error::permanent(msg)))
}

#[no_mangle]
pub extern "C" fn trap() -> i32 {
    panic!("kitchen: deliberate trap")
}

#[no_mangle]
pub extern "C" fn invocation() -> i32 {
    bulkhead::handle(|_| Ok(bulkhead::invocation()?.to_json()))
}

#[no_mangle]
pub extern "C" fn retry_after() -> i32 {
    bulkhead::handle_str(|ms| {
        let ms: u64 = ms.parse().map_err(|_| Error::permanent("input is not a number of milliseconds"))?;
        bulkhead::retry_after(Duration::from_millis(ms));
        Err::<(), _>(Error::retryable("rate limited"))
    })
}

/// durable exercises checkpoints, plugin state and progress with the input
/// as the key; it reports what it read as had=…;prev=…;got=…;after=….
#[no_mangle]
pub extern "C" fn durable() -> i32 {
    bulkhead::handle_str(|key| {
        let text = |b: Option<Vec<u8>>| b.map_or("none".to_string(), |b| String::from_utf8_lossy(&b).into_owned());
        let had = text(bulkhead::load_checkpoint());
        bulkhead::save_checkpoint(format!("cp:{}", key).as_bytes())?;
        let prev = text(bulkhead::state(key));
        bulkhead::set_state(key, format!("v:{}", key).as_bytes())?;
        let got = text(bulkhead::state(key));
        bulkhead::delete_state(key)?;
        let after = text(bulkhead::state(key));
        bulkhead::progress(1, 2, &format!("half way \"{}\"", key));
        Ok(format!("had={};prev={};got={};after={}", had, prev, got, after))
    })
}
