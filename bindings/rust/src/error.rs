//! The error of every fallible call: which C function failed, on what, and
//! the errno value it reported.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Linux errno values the extension API reports (see `nitroheap.h`).
pub mod errno {
    /// Writing a read-only `nitro_ctl` name.
    pub const EPERM: i32 = 1;
    /// An unknown `nitro_ctl` name, or a dump into a missing directory.
    pub const ENOENT: i32 = 2;
    /// No memory, or no partition left to create.
    pub const ENOMEM: i32 = 12;
    /// A partition with this name is alive.
    pub const EEXIST: i32 = 17;
    /// A malformed argument: an interior NUL, a wrong value size, a name too long.
    pub const EINVAL: i32 = 22;
    /// NitroHeap does not serve this process (`NITROHEAP=legacy`).
    pub const ENOSYS: i32 = 38;
}

/// A failed call into NitroHeap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    call: &'static str,
    subject: String,
    errno: i32,
}

impl Error {
    pub(crate) fn new(call: &'static str, subject: impl Into<String>, errno: i32) -> Error {
        Error { call, subject: subject.into(), errno }
    }

    /// The errno value (see [`errno`]).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The errno value as an [`io::ErrorKind`].
    pub fn kind(&self) -> io::ErrorKind {
        io::Error::from_raw_os_error(self.errno).kind()
    }

    /// The C function that failed, e.g. `"nitro_ctl"`.
    pub fn call(&self) -> &'static str {
        self.call
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({:?}): {}", self.call, self.subject, io::Error::from_raw_os_error(self.errno))
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

/// `s` as a C string for `call`; an interior NUL is EINVAL.
pub(crate) fn c_string(call: &'static str, s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::new(call, s, errno::EINVAL))
}

/// `path` as a C string for `call`; an interior NUL is EINVAL.
pub(crate) fn c_path(call: &'static str, path: &Path) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::new(call, path.to_string_lossy(), errno::EINVAL))
}

/// Ok for 0, else the errno value as an error.
pub(crate) fn check(call: &'static str, subject: &str, rc: i32) -> Result<(), Error> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::new(call, subject, rc))
    }
}
