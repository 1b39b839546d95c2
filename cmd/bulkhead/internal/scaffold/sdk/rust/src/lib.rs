//! The Rust guest SDK of bulkhead: it turns a `cdylib` crate into a bulkhead
//! node (an Extism-ABI module) for the `wasm32-wasi` target (`wasm32-wasip1`
//! from Rust 1.84). It uses the standard library only.
//!
//! A node exports one function per entry point and hands its work to
//! [`handle`]:
//!
//! ```ignore
//! #[no_mangle]
//! pub extern "C" fn run() -> i32 {
//!     bulkhead::handle(|input: &[u8]| {
//!         if input.is_empty() {
//!             return Err(bulkhead::Error::permanent("empty input"));
//!         }
//!         Ok(input.to_ascii_uppercase())
//!     })
//! }
//! ```
//!
//! Build with Cargo (`cargo build --release --target wasm32-wasi`, crate
//! type `cdylib`) or with `rustc` alone, as `sdk-guest/rust/examples/`
//! shows. An `Err` is a retryable failure unless it is
//! [`Error::permanent`], which the host never retries. A panic traps the
//! instance; the host discards it and retries on a fresh one.
//!
//! Data crosses the ABI eight bytes per host call. The import declarations
//! and constants in [`abi`] are generated from the Go package `abi` by
//! `go generate ./abi`.

pub mod abi;
pub mod json;

use std::fmt;
use std::time::Duration;

use abi::{extism, host};

/// A failed call: a message and whether another attempt may succeed.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    permanent: bool,
}

impl Error {
    /// A failure another attempt may fix: the host retries it.
    pub fn retryable(message: impl Into<String>) -> Error {
        Error { message: message.into(), permanent: false }
    }

    /// A failure no attempt can fix, such as bad input: never retried.
    pub fn permanent(message: impl Into<String>) -> Error {
        Error { message: message.into(), permanent: true }
    }

    /// The message the host sees.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the host must not retry.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The return code of an export that failed with this error.
    pub fn code(&self) -> i32 {
        if self.permanent {
            abi::CODE_PERMANENT
        } else {
            abi::CODE_RETRYABLE
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.permanent { "permanent" } else { "retryable" };
        write!(f, "Error({}: {:?})", kind, self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Error {
        Error::retryable(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Error {
        Error::retryable(s)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::retryable(e.to_string())
    }
}

impl From<std::num::ParseIntError> for Error {
    fn from(e: std::num::ParseIntError) -> Error {
        Error::retryable(e.to_string())
    }
}

impl From<std::str::Utf8Error> for Error {
    fn from(e: std::str::Utf8Error) -> Error {
        Error::retryable(e.to_string())
    }
}

impl From<std::string::FromUtf8Error> for Error {
    fn from(e: std::string::FromUtf8Error) -> Error {
        Error::retryable(e.to_string())
    }
}

impl From<json::ParseError> for Error {
    fn from(e: json::ParseError) -> Error {
        Error::retryable(e.to_string())
    }
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a handler may return as the call's output.
pub trait IntoOutput {
    /// The output bytes.
    fn into_output(self) -> Vec<u8>;
}

impl IntoOutput for Vec<u8> {
    fn into_output(self) -> Vec<u8> {
        self
    }
}

impl IntoOutput for &[u8] {
    fn into_output(self) -> Vec<u8> {
        self.to_vec()
    }
}

impl IntoOutput for String {
    fn into_output(self) -> Vec<u8> {
        self.into_bytes()
    }
}

impl IntoOutput for &str {
    fn into_output(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl IntoOutput for () {
    fn into_output(self) -> Vec<u8> {
        Vec::new()
    }
}

impl IntoOutput for json::Value {
    fn into_output(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// Reads the input, runs `f` and sets the output or the error. Returns the
/// code the export must return.
pub fn handle<O: IntoOutput>(f: impl FnOnce(&[u8]) -> Result<O>) -> i32 {
    let input = input();
    finish(f(&input))
}

/// Like [`handle`] for text: input that is not UTF-8 is a permanent failure.
pub fn handle_str<O: IntoOutput>(f: impl FnOnce(&str) -> Result<O>) -> i32 {
    let input = input();
    match std::str::from_utf8(&input) {
        Ok(s) => finish(f(s)),
        Err(e) => fail(&Error::permanent(format!("input is not UTF-8: {}", e))),
    }
}

/// Like [`handle`] for JSON: input that does not parse is a permanent
/// failure; the returned value is the output.
pub fn handle_json(f: impl FnOnce(json::Value) -> Result<json::Value>) -> i32 {
    let input = input();
    match json::parse(&input) {
        Ok(v) => finish(f(v)),
        Err(e) => fail(&Error::permanent(format!("decode input: {}", e))),
    }
}

fn finish<O: IntoOutput>(r: Result<O>) -> i32 {
    match r {
        Ok(out) => {
            output(&out.into_output());
            abi::CODE_OK
        }
        Err(e) => fail(&e),
    }
}

/// Sets `err` as the call's error and returns the matching code.
pub fn fail(err: &Error) -> i32 {
    unsafe { extism::error_set(write_block(err.message.as_bytes())) };
    err.code()
}

/// The call's input, copied in one host call.
pub fn input() -> Vec<u8> {
    unsafe {
        let n = extism::input_length() as usize;
        let mut buf = vec![0u8; n];
        if n > 0 {
            host::input_read(buf.as_mut_ptr() as usize as u64);
        }
        buf
    }
}

/// Sets the call's output.
pub fn output(b: &[u8]) {
    unsafe { extism::output_set(write_block(b), b.len() as u64) }
}

/// The value of a config key, or `None` when it is unset.
pub fn config(key: &str) -> Option<String> {
    unsafe {
        let k = write_block(key.as_bytes());
        let h = extism::config_get(k);
        extism::free(k);
        take_block(h).map(|b| String::from_utf8_lossy(&b).into_owned())
    }
}

/// A variable of this instance, or `None` when unset. Vars live as long as
/// the instance: use plugin state for anything that must survive.
pub fn var(key: &str) -> Option<Vec<u8>> {
    // The host frees the key.
    unsafe { take_block(extism::var_get(write_block(key.as_bytes()))) }
}

/// Sets a variable of this instance.
pub fn set_var(key: &str, value: &[u8]) {
    // The host frees both blocks.
    unsafe { extism::var_set(write_block(key.as_bytes()), write_block(value)) }
}

/// Deletes a variable of this instance.
pub fn delete_var(key: &str) {
    unsafe { extism::var_set(write_block(key.as_bytes()), 0) }
}

/// A log level. The host drops trace lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes `msg` to the host's logger at `level`.
pub fn log(level: Level, msg: &str) {
    unsafe {
        let h = write_block(msg.as_bytes()); // the host frees it
        match level {
            Level::Trace => extism::log_trace(h),
            Level::Debug => extism::log_debug(h),
            Level::Info => extism::log_info(h),
            Level::Warn => extism::log_warn(h),
            Level::Error => extism::log_error(h),
        }
    }
}

/// What the host says about the current call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    pub run_id: String,
    pub workflow: String,
    pub node: String,
    /// Counts from 1.
    pub attempt: i64,
    /// Shared by every attempt of a node in a run ("run/node").
    pub idempotency_key: String,
    /// 0 when the call has no deadline.
    pub deadline_unix_ms: i64,
    pub plugin: String,
    pub plugin_version: String,
}

impl Invocation {
    /// The invocation as the JSON the host sent.
    pub fn to_json(&self) -> json::Value {
        use json::Value::{Int, Str};
        json::Value::Object(vec![
            ("run_id".into(), Str(self.run_id.clone())),
            ("workflow".into(), Str(self.workflow.clone())),
            ("node".into(), Str(self.node.clone())),
            ("attempt".into(), Int(self.attempt)),
            ("idempotency_key".into(), Str(self.idempotency_key.clone())),
            ("deadline_unix_ms".into(), Int(self.deadline_unix_ms)),
            ("plugin".into(), Str(self.plugin.clone())),
            ("plugin_version".into(), Str(self.plugin_version.clone())),
        ])
    }
}

/// The run, workflow, node, attempt, idempotency key, deadline and plugin
/// version of the current call.
pub fn invocation() -> Result<Invocation> {
    let b = unsafe { take_block(host::invocation()) }.ok_or("no invocation info")?;
    let v = json::parse(&b)?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
    let i = |k: &str| v.get(k).and_then(|x| x.as_i64()).unwrap_or_default();
    Ok(Invocation {
        run_id: s("run_id"),
        workflow: s("workflow"),
        node: s("node"),
        attempt: i("attempt"),
        idempotency_key: s("idempotency_key"),
        deadline_unix_ms: i("deadline_unix_ms"),
        plugin: s("plugin"),
        plugin_version: s("plugin_version"),
    })
}

/// Hints the host to wait `d` before the next attempt of this call, for
/// example after an HTTP 429.
pub fn retry_after(d: Duration) {
    unsafe { host::retry_after(d.as_millis().min(u64::MAX as u128) as u64) }
}

/// Durably stores `b` as this node's newest checkpoint. A later attempt of
/// the same node in the same run reads it with [`load_checkpoint`].
pub fn save_checkpoint(b: &[u8]) -> Result<()> {
    let rc = unsafe {
        let h = write_block(b);
        let rc = host::checkpoint_save(h);
        extism::free(h);
        rc
    };
    code_result(rc, "checkpoint not saved")
}

/// This node's newest checkpoint, or `None`.
pub fn load_checkpoint() -> Option<Vec<u8>> {
    unsafe { take_block(host::checkpoint_load()) }
}

/// The value of `key` in the plugin's durable state, or `None`.
pub fn state(key: &str) -> Option<Vec<u8>> {
    unsafe {
        let k = write_block(key.as_bytes());
        let h = host::state_get(k);
        extism::free(k);
        take_block(h)
    }
}

/// Durably sets `key` in the plugin's state.
pub fn set_state(key: &str, value: &[u8]) -> Result<()> {
    let rc = unsafe {
        let (k, v) = (write_block(key.as_bytes()), write_block(value));
        let rc = host::state_set(k, v);
        extism::free(k);
        extism::free(v);
        rc
    };
    code_result(rc, "state not set")
}

/// Deletes `key` from the plugin's state.
pub fn delete_state(key: &str) -> Result<()> {
    let rc = unsafe {
        let k = write_block(key.as_bytes());
        let rc = host::state_delete(k);
        extism::free(k);
        rc
    };
    code_result(rc, "state not deleted")
}

/// Reports how far this node is.
pub fn progress(done: i64, total: i64, message: &str) {
    let mut fields = vec![("done".to_string(), json::Value::Int(done)), ("total".to_string(), json::Value::Int(total))];
    if !message.is_empty() {
        fields.push(("message".to_string(), json::Value::Str(message.to_string())));
    }
    let b = json::Value::Object(fields).to_string();
    unsafe {
        let h = write_block(b.as_bytes());
        host::progress(h);
        extism::free(h);
    }
}

fn code_result(rc: i32, what: &str) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::retryable(format!("{} (code {})", what, rc)))
    }
}

/// Copies `b` into a new Extism block in one host call; 0 for an empty `b`
/// or when the memory cap leaves no room.
///
/// # Safety
/// Calls the host; only valid inside an export.
pub unsafe fn write_block(b: &[u8]) -> u64 {
    if b.is_empty() {
        return 0;
    }
    host::block_write(b.as_ptr() as usize as u64, b.len() as u64)
}

/// Copies the Extism block at `h` out and frees it; `None` for handle 0.
///
/// # Safety
/// Calls the Extism kernel; only valid inside an export.
pub unsafe fn take_block(h: u64) -> Option<Vec<u8>> {
    if h == 0 {
        return None;
    }
    let n = extism::length(h) as usize;
    let mut buf = vec![0u8; n];
    if n > 0 {
        host::block_read(h, buf.as_mut_ptr() as usize as u64);
    }
    extism::free(h);
    Some(buf)
}
