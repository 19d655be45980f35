//! Statistics: the typed snapshot (`nitro_stats_snapshot`) and the JSON
//! document (`nitro_stats_json`) that telemetry and recordings carry.

use std::mem::{size_of, MaybeUninit};
use std::os::raw::c_char;
use std::ptr;

use crate::error::{check, errno, Error};
use crate::ffi::{self, RawStats};

pub use crate::ffi::{ClassStats, Counters};

/// A statistics snapshot of the process heap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub pid: u64,
    /// Threads that have a thread cache.
    pub threads: u64,
    /// All partitions together.
    pub total: Counters,
    /// The live partitions, the default one (`"default"`) first.
    pub partitions: Vec<PartitionStats>,
    /// The default partition's size classes that exist.
    pub classes: Vec<ClassStats>,
}

/// One partition's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionStats {
    pub name: String,
    pub counters: Counters,
}

/// Takes a statistics snapshot. Err with ENOSYS when NitroHeap does not
/// serve the process, EINVAL when the library's snapshot is of another
/// version than this crate reads.
pub fn stats() -> Result<Stats, Error> {
    // On the stack (about 10 KiB), so that taking the snapshot allocates
    // nothing it would count.
    // SAFETY: RawStats is integers only; all zeroes is a valid value.
    let mut raw: RawStats = unsafe { MaybeUninit::zeroed().assume_init() };
    raw.size = size_of::<RawStats>() as u32;
    // SAFETY: raw is a writable nitro_stats_t whose size field says so.
    check("nitro_stats_snapshot", "", unsafe { ffi::nitro_stats_snapshot(&mut raw) })?;
    if raw.version != ffi::STATS_VERSION {
        return Err(Error::new("nitro_stats_snapshot", format!("version {}", raw.version), errno::EINVAL));
    }
    let count = (raw.partition_count as usize).min(ffi::STATS_MAX_PARTITIONS);
    let partitions = raw.partitions[..count]
        .iter()
        .map(|p| PartitionStats { name: name_of(&p.name), counters: p.counters })
        .collect();
    let classes = raw.classes.iter().filter(|k| k.size != 0).copied().collect();
    Ok(Stats { pid: raw.pid, threads: raw.threads, total: raw.total, partitions, classes })
}

fn name_of(name: &[c_char]) -> String {
    let bytes: Vec<u8> = name.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The statistics as a JSON document: what `nitro_stats_json` writes, the
/// shared-memory segment and recordings carry (docs/telemetry.md).
pub fn stats_json() -> Result<String, Error> {
    loop {
        // SAFETY: a zero length asks for the size and writes nothing.
        let needed = unsafe { ffi::nitro_stats_json(ptr::null_mut(), 0) };
        if needed == 0 {
            return Err(Error::new("nitro_stats_json", "", errno::ENOMEM));
        }
        // Room for numbers that grow between the two calls; if they outgrow
        // it, ask again.
        let mut buf = vec![0u8; needed + 1 + 256];
        // SAFETY: buf is writable for buf.len() bytes.
        let len = unsafe { ffi::nitro_stats_json(buf.as_mut_ptr().cast(), buf.len()) };
        if len != 0 && len < buf.len() {
            buf.truncate(len);
            return Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()));
        }
    }
}
