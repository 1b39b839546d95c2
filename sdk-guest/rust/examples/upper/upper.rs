//! upper is an example bulkhead node: it upper-cases its input.
//!
//! Build (from this directory): make RUSTC=/usr/bin/rustc

#[no_mangle]
pub extern "C" fn run() -> i32 {
    bulkhead::handle(|input| {
        if input.is_empty() {
            return Err(bulkhead::Error::permanent("empty input"));
        }
        bulkhead::log(bulkhead::Level::Info, &format!("upper-casing {} bytes", input.len()));
        Ok(input.to_ascii_uppercase())
    })
}
