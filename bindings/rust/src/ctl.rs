//! `nitro_ctl`, NitroHeap's named control and statistics interface (in the
//! spirit of jemalloc's `mallctl`), and the dumps.
//!
//! Names (see `nitroheap.h`): `"stats.<counter>"`,
//! `"stats.partitions.<name>.<counter>"`, `"stats.classes.<size>.<field>"`,
//! `"stats.threads"`, `"version"`, `"opt.<option>"` (read);
//! `"heap.release"` and `"thread.cache.flush"` (write, no value);
//! `"flight_recorder.dump"` and `"profile.dump"` (write a path).

use std::os::raw::c_void;
use std::path::Path;
use std::ptr;

use crate::error::{c_path, c_string, check, errno, Error};
use crate::ffi;

/// Reads a number: a counter (`"stats.allocations"`) or a numeric option
/// (`"opt.sample_rate"`). Err with ENOENT for an unknown name, EINVAL for a
/// name whose value is not a number or for an interior NUL, ENOSYS when
/// NitroHeap does not serve the process.
pub fn ctl_read_u64(name: &str) -> Result<u64, Error> {
    let c_name = c_string("nitro_ctl", name)?;
    let mut value = 0u64;
    let mut len = std::mem::size_of::<u64>();
    // SAFETY: value is writable for len bytes; nothing is written.
    let rc = unsafe { ffi::nitro_ctl(c_name.as_ptr(), (&mut value as *mut u64).cast(), &mut len, ptr::null(), 0) };
    check("nitro_ctl", name, rc)?;
    // A short string fits in 8 bytes too; the length it reports gives it away.
    if len != std::mem::size_of::<u64>() {
        return Err(Error::new("nitro_ctl", name, errno::EINVAL));
    }
    Ok(value)
}

/// Reads a string: `"version"` or a string option (`"opt.mode"`). Err with
/// ENOENT for an unknown name, EINVAL for a name whose value is a number or
/// for an interior NUL.
pub fn ctl_read_string(name: &str) -> Result<String, Error> {
    let c_name = c_string("nitro_ctl", name)?;
    // First the size: string names set it, numeric names leave it alone.
    let mut len = 0usize;
    // SAFETY: a null oldp asks for the length only.
    let rc = unsafe { ffi::nitro_ctl(c_name.as_ptr(), ptr::null_mut(), &mut len, ptr::null(), 0) };
    check("nitro_ctl", name, rc)?;
    if len == 0 {
        return Err(Error::new("nitro_ctl", name, errno::EINVAL));
    }
    let mut buf = vec![0u8; len];
    // SAFETY: buf is writable for len bytes.
    let rc = unsafe { ffi::nitro_ctl(c_name.as_ptr(), buf.as_mut_ptr().cast(), &mut len, ptr::null(), 0) };
    check("nitro_ctl", name, rc)?;
    buf.truncate(len.saturating_sub(1)); // the NUL
    Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Writes `value` to `name`: an empty value for the actions
/// (`"heap.release"`, `"thread.cache.flush"`), a NUL-terminated path for the
/// dumps. Err with ENOENT for an unknown name, EPERM for a read-only one
/// (`"stats.*"`, `"opt.*"`, `"version"`), EINVAL for a malformed value, or
/// the errno of a failed dump.
pub fn ctl_write(name: &str, value: &[u8]) -> Result<(), Error> {
    let c_name = c_string("nitro_ctl", name)?;
    // A slice's pointer is never null, also when empty: nitro_ctl would take
    // a null newp with no length as a read.
    let newp: *const c_void = value.as_ptr().cast();
    // SAFETY: newp is readable for value.len() bytes; nothing is read back.
    let rc = unsafe { ffi::nitro_ctl(c_name.as_ptr(), ptr::null_mut(), ptr::null_mut(), newp, value.len()) };
    check("nitro_ctl", name, rc)
}

/// Returns the free memory of every partition to the kernel; the bytes
/// released.
pub fn release_free_memory() -> usize {
    // SAFETY: takes no arguments.
    unsafe { ffi::nitro_release_free_memory() }
}

/// Returns the calling thread's cached objects to the shared heap
/// (`"thread.cache.flush"`).
pub fn flush_thread_cache() -> Result<(), Error> {
    ctl_write("thread.cache.flush", &[])
}

/// Writes the flight recording (`telemetry/flight_recorder.proto`,
/// `FlightRecording`) to `path`; `%p` in it becomes the pid. The file is
/// replaced atomically, with mode `output_mode` (0600 by default). Err with
/// the errno of the failure (ENOENT for a missing directory), EINVAL for an
/// interior NUL.
pub fn dump_flight_recording(path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    let c = c_path("nitro_flight_recorder_dump", path)?;
    // SAFETY: c is a NUL-terminated path.
    let rc = unsafe { ffi::nitro_flight_recorder_dump(c.as_ptr()) };
    check("nitro_flight_recorder_dump", &path.to_string_lossy(), rc)
}

/// Writes a heap profile of the sampled allocations to `path`: pprof's
/// `profile.proto`, gzip-compressed, with mappings and build IDs (`pprof`
/// and `go tool pprof` open it); `%p` in the path becomes the pid. Errors as
/// for [`dump_flight_recording`].
pub fn dump_heap_profile(path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    let c = c_path("nitro_heap_profile_dump", path)?;
    // SAFETY: c is a NUL-terminated path.
    let rc = unsafe { ffi::nitro_heap_profile_dump(c.as_ptr()) };
    check("nitro_heap_profile_dump", &path.to_string_lossy(), rc)
}
