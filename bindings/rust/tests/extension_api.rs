//! The extension API: statistics, nitro_ctl, partitions and dumps, and what
//! bad input gets.

#[global_allocator]
static GLOBAL: nitroheap::NitroHeap = nitroheap::NitroHeap;

use std::alloc::Layout;
use std::cell::Cell;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

use nitroheap::{errno, Partition, PartitionBox};

const OBJECTS: u64 = 1000;

/// A fresh directory for this test's files.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nitroheap-rust-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Makes sure the flight recorder has taken a sample before a test dumps.
///
/// Works around a race in telemetry/runtime.cc: a dump sizes its scratch
/// buffer from the recorder's capacity, which stays 0 until the first sample
/// allocates the ring, and then reads the capacity again to copy the
/// events; a first sample in another thread between the two overruns the
/// buffer (SIGSEGV in Gather, seen once in about 50 runs of this file).
/// 16 MiB allocated leaves no sample with probability e^-32 at the default
/// profile_rate of 512 KiB.
fn recorder_started() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        for _ in 0..256 {
            let block = vec![1u8; 64 << 10];
            // A volatile read keeps the allocation from being optimized away.
            assert_eq!(unsafe { std::ptr::read_volatile(&block[block.len() - 1]) }, 1);
        }
    });
}

/// The number after `"key":` at its first occurrence in a JSON document.
fn json_number(json: &str, key: &str) -> u64 {
    let pattern = format!("\"{key}\":");
    let at = json.find(&pattern).unwrap_or_else(|| panic!("{key} missing in {json}")) + pattern.len();
    let digits: String = json[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

#[test]
fn heap_serves_this_process() {
    assert!(nitroheap::is_active());
    assert_eq!(nitroheap::heap_mode(), "nitro");
}

#[test]
fn stats_count_allocations_and_frees() {
    // Other tests run in parallel threads: counters only grow, so the
    // deltas are at least this thread's work.
    let before = nitroheap::stats().unwrap();
    let boxes: Vec<Box<[u8; 64]>> = (0..OBJECTS).map(|_| Box::new([7u8; 64])).collect();
    let during = nitroheap::stats().unwrap();
    drop(boxes);
    let after = nitroheap::stats().unwrap();

    assert_eq!(before.pid, u64::from(std::process::id()));
    assert!(during.total.allocations >= before.total.allocations + OBJECTS, "{before:?}\n{during:?}");
    assert!(after.total.frees >= during.total.frees + OBJECTS, "{during:?}\n{after:?}");
    assert!(during.total.live_bytes > 0 && during.total.committed_bytes >= during.total.live_bytes);
    assert!(during.threads >= 1);
    assert_eq!(during.partitions[0].name, "default");
    let class_64 = during.classes.iter().find(|k| k.size == 64).expect("a 64-byte size class");
    assert!(class_64.allocations >= OBJECTS, "{class_64:?}");
}

#[test]
fn stats_json_is_the_same_snapshot_format() {
    let earlier = nitroheap::stats().unwrap();
    let json = nitroheap::stats_json().unwrap();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    assert!(json.contains("\"heap_mode\":\"nitro\""), "{json}");
    assert!(json.contains("\"partitions\":{\"default\":{"), "{json}");
    assert_eq!(json_number(&json, "pid"), u64::from(std::process::id()));
    assert_eq!(json_number(&json, "version"), 1);
    assert!(json_number(&json, "allocations") >= earlier.total.allocations);
}

#[test]
fn ctl_reads_counters_options_and_version() {
    let earlier = nitroheap::stats().unwrap().total.allocations;
    let allocations = nitroheap::ctl_read_u64("stats.allocations").unwrap();
    assert!(allocations >= earlier, "{allocations} < {earlier}");
    assert!(nitroheap::ctl_read_u64("stats.threads").unwrap() >= 1);
    assert!(nitroheap::ctl_read_u64("stats.classes.64.slab_objects").is_ok());
    assert!(nitroheap::ctl_read_u64("stats.partitions.default.allocations").unwrap() > 0);
    assert!(nitroheap::ctl_read_u64("opt.sample_rate").is_ok());
    let mode = nitroheap::ctl_read_string("opt.mode").unwrap();
    assert!(["fast", "balanced", "strict"].contains(&mode.as_str()), "{mode:?}");
    assert!(nitroheap::ctl_read_string("version").unwrap().starts_with("nitroheap "));
}

#[test]
fn ctl_writes_actions() {
    nitroheap::ctl_write("heap.release", &[]).unwrap();
    nitroheap::ctl_write("thread.cache.flush", &[]).unwrap();
    nitroheap::flush_thread_cache().unwrap();
    let _released: usize = nitroheap::release_free_memory();
}

#[test]
fn ctl_bad_input() {
    let e = nitroheap::ctl_read_u64("stats.no_such_counter").unwrap_err();
    assert_eq!((e.errno(), e.call()), (errno::ENOENT, "nitro_ctl"));
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(e.to_string(), "nitro_ctl(\"stats.no_such_counter\"): No such file or directory (os error 2)");
    assert_eq!(nitroheap::ctl_read_u64("no.such.name").unwrap_err().errno(), errno::ENOENT);
    assert_eq!(nitroheap::ctl_read_string("opt.no_such_option").unwrap_err().errno(), errno::ENOENT);
    assert_eq!(nitroheap::ctl_write("no.such.action", &[]).unwrap_err().errno(), errno::ENOENT);

    // An interior NUL would cut the name short in C: refused before the call.
    let e = nitroheap::ctl_read_u64("stats.allocations\0tail").unwrap_err();
    assert_eq!(e.errno(), errno::EINVAL);
    assert!(e.to_string().contains("stats.allocations\\0tail"), "{e}");
    assert_eq!(nitroheap::ctl_write("heap.release\0", &[]).unwrap_err().errno(), errno::EINVAL);

    // The wrong type: a string read as a number and the other way round.
    assert_eq!(nitroheap::ctl_read_u64("version").unwrap_err().errno(), errno::EINVAL);
    assert_eq!(nitroheap::ctl_read_u64("opt.mode").unwrap_err().errno(), errno::EINVAL);
    assert_eq!(nitroheap::ctl_read_string("stats.allocations").unwrap_err().errno(), errno::EINVAL);

    // Read-only names, and a dump path without its NUL.
    assert_eq!(nitroheap::ctl_write("stats.allocations", &[]).unwrap_err().errno(), errno::EPERM);
    // profile_rate is fixed at start-up (samples are weighed by one rate);
    // sample_rate, decay_ms and stats_print are the writable options.
    assert_eq!(nitroheap::ctl_write("opt.profile_rate", &1u64.to_ne_bytes()).unwrap_err().errno(), errno::EPERM);
    assert_eq!(nitroheap::ctl_write("profile.dump", b"/tmp/x").unwrap_err().errno(), errno::EINVAL);
}

#[test]
fn partition_boxes_live_in_their_partition() {
    let cache = Partition::new("rust-test-boxes").unwrap();
    let other = Partition::new("rust-test-other").unwrap();
    assert_eq!(cache.name(), "rust-test-boxes");

    let boxes: Vec<PartitionBox<'_, [u64; 4]>> = (0..OBJECTS).map(|i| cache.boxed([i; 4]).unwrap()).collect();
    for (i, b) in boxes.iter().enumerate() {
        let p = PartitionBox::as_ptr(b).cast::<u8>();
        assert!(cache.owns(p) && !other.owns(p) && nitroheap::owns(p));
        assert_eq!(**b, [i as u64; 4]);
    }
    let plain = Box::new(5u64);
    assert!(!cache.owns((&*plain as *const u64).cast()));

    let stats = nitroheap::stats().unwrap();
    let mine = stats.partitions.iter().find(|p| p.name == "rust-test-boxes").expect("listed");
    assert!(mine.counters.allocations >= OBJECTS && mine.counters.live_objects >= OBJECTS, "{mine:?}");
    let by_name = nitroheap::ctl_read_u64("stats.partitions.rust-test-boxes.live_objects").unwrap();
    assert!(by_name >= OBJECTS, "{by_name}");

    let mut boxes = boxes;
    let last = boxes.pop().unwrap();
    assert_eq!(PartitionBox::into_inner(last), [OBJECTS - 1; 4]);
    drop(boxes);
    let live = nitroheap::ctl_read_u64("stats.partitions.rust-test-boxes.live_objects").unwrap();
    assert_eq!(live, 0);
}

#[test]
fn partition_box_runs_the_destructor() {
    struct Counted<'a>(&'a Cell<u32>);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Cell::new(0);
    let partition = Partition::new("rust-test-drop").unwrap();
    let b = partition.boxed(Counted(&drops)).unwrap();
    assert_eq!(drops.get(), 0);
    drop(b);
    assert_eq!(drops.get(), 1);
    let zst = partition.boxed(()).unwrap();
    assert!(partition.owns(PartitionBox::as_ptr(&zst).cast()));
}

#[test]
fn partition_raw_alloc_realloc_and_alignment() {
    let partition = Partition::new("rust-test-raw").unwrap();
    for &align in &[1usize, 8, 16, 64, 4096] {
        let layout = Layout::from_size_align(100, align).unwrap();
        let p = partition.alloc(layout);
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0, "align {align}");
        assert!(partition.owns(p));
        unsafe {
            for i in 0..100 {
                p.add(i).write(i as u8);
            }
            let q = partition.realloc(p, layout, 100_000);
            assert!(!q.is_null());
            assert_eq!(q as usize % align, 0, "align {align} after realloc");
            assert!(partition.owns(q));
            for i in 0..100 {
                assert_eq!(q.add(i).read(), i as u8, "align {align}: byte {i}");
            }
            partition.dealloc(q);
        }
    }
}

#[test]
fn partition_bad_input() {
    let first = Partition::new("rust-test-dup").unwrap();
    let e = Partition::new("rust-test-dup").unwrap_err();
    assert_eq!((e.errno(), e.call()), (errno::EEXIST, "nitro_partition_create"));
    drop(first);
    // The name is free again once the partition is gone.
    drop(Partition::new("rust-test-dup").unwrap());

    let long = "x".repeat(nitroheap::PARTITION_NAME_MAX + 1);
    assert_eq!(Partition::new(&long).unwrap_err().errno(), errno::EINVAL);
    assert!(Partition::new(&long[1..]).is_ok());
    assert_eq!(Partition::new("rust\0test").unwrap_err().errno(), errno::EINVAL);
}

#[test]
fn heap_profile_dump() {
    recorder_started();
    // Sampling is by bytes (profile_rate, 512 KiB by default): 64 MiB
    // allocated, half kept live, leaves samples to report.
    let kept: Vec<Vec<u8>> = (0..1024).map(|i| vec![i as u8; 64 << 10]).filter(|v| v[0] % 2 == 0).collect();
    let dir = scratch_dir("profile");
    nitroheap::dump_heap_profile(dir.join("heap.%p.pb.gz")).unwrap();
    let path = dir.join(format!("heap.{}.pb.gz", std::process::id()));
    let data = fs::read(&path).unwrap();
    assert_eq!(&data[..2], &[0x1f, 0x8b], "{} is not gzip", path.display());
    let out = Command::new("gzip").arg("-dc").arg(&path).output().expect("gzip runs");
    assert!(out.status.success(), "gzip -dc {}", path.display());
    for name in ["alloc_space", "inuse_space", "inuse_objects"] {
        let found = out.stdout.windows(name.len()).any(|w| w == name.as_bytes());
        assert!(found, "{name} missing in {}", path.display());
    }
    assert!(nitroheap::ctl_read_u64("stats.sampled_allocations").unwrap() > 0);
    drop(kept);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flight_recording_dump() {
    recorder_started();
    let dir = scratch_dir("recording");
    let path = dir.join("recording.pb");
    nitroheap::dump_flight_recording(&path).unwrap();
    let data = fs::read(&path).unwrap();
    // FlightRecording: format_version = 1, then the process message.
    assert_eq!(&data[..3], &[0x08, 0x01, 0x12]);
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap().as_bytes();
    assert!(data.windows(exe.len()).any(|w| w == exe), "the executable's path is missing");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    // The same through nitro_ctl.
    let again = dir.join("again.pb");
    let mut value = again.to_str().unwrap().as_bytes().to_vec();
    value.push(0);
    nitroheap::ctl_write("flight_recorder.dump", &value).unwrap();
    assert!(fs::read(&again).unwrap().starts_with(&[0x08, 0x01]));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dump_bad_input() {
    recorder_started();
    let missing = std::env::temp_dir().join(format!("nitroheap-rust-{}-missing/rec.pb", std::process::id()));
    let e = nitroheap::dump_flight_recording(&missing).unwrap_err();
    assert_eq!((e.errno(), e.call()), (errno::ENOENT, "nitro_flight_recorder_dump"));
    assert_eq!(nitroheap::dump_heap_profile(&missing).unwrap_err().errno(), errno::ENOENT);
    assert_eq!(nitroheap::dump_heap_profile("/tmp/a\0b").unwrap_err().errno(), errno::EINVAL);
    assert_eq!(nitroheap::dump_flight_recording("").unwrap_err().errno(), errno::EINVAL);
}

/// Run by `legacy_mode_refuses_statistics` in a child with NITROHEAP=legacy.
#[test]
#[ignore]
fn legacy_child() {
    assert_eq!(std::env::var("NITROHEAP").as_deref(), Ok("legacy"));
    assert!(!nitroheap::is_active());
    assert_eq!(nitroheap::heap_mode(), "legacy");
    assert_eq!(nitroheap::stats().unwrap_err().errno(), errno::ENOSYS);
    assert_eq!(nitroheap::ctl_read_u64("stats.allocations").unwrap_err().errno(), errno::ENOSYS);
    // Allocation still works: the C library serves it.
    let v = vec![1u8; 1000];
    assert!(!nitroheap::owns(v.as_ptr()));
}

#[test]
fn legacy_mode_refuses_statistics() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "legacy_child", "--test-threads=1"])
        .env("NITROHEAP", "legacy")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("1 passed"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}
