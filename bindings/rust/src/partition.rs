//! Partitions: independent heaps, each with its own address space. Memory
//! freed in one is never reused by another, so a use after free in one
//! component cannot reach another's objects.

use std::alloc::Layout;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};

use crate::error::{c_string, errno, Error};
use crate::ffi::{self, RawPartition};

/// The longest name a partition keeps (bytes).
pub const PARTITION_NAME_MAX: usize = 31;

/// The alignment of `nitro_partition_malloc` (the heap's `kMinAlign`).
const MIN_ALIGN: usize = 16;

/// A NitroHeap partition. Dropping it destroys the partition: everything it
/// holds is unmapped. [`PartitionBox`]es borrow it, so they cannot outlive
/// it; pointers from [`Partition::alloc`] become invalid.
pub struct Partition {
    raw: NonNull<RawPartition>,
    name: String,
}

// SAFETY: NitroHeap's partition functions may be called from any thread:
// each partition synchronizes its own state.
unsafe impl Send for Partition {}
unsafe impl Sync for Partition {}

impl Partition {
    /// Creates a partition. Names identify partitions in statistics
    /// (`stats().partitions`, `"stats.partitions.<name>.<counter>"`). Err with
    /// EEXIST when a live partition has this name, ENOMEM when no more can be
    /// created (at most 255), EINVAL for a name longer than
    /// [`PARTITION_NAME_MAX`] bytes or with an interior NUL.
    pub fn new(name: &str) -> Result<Partition, Error> {
        const CALL: &str = "nitro_partition_create";
        // The C function would truncate it, and then compare the truncation.
        if name.len() > PARTITION_NAME_MAX {
            return Err(Error::new(CALL, name, errno::EINVAL));
        }
        let c_name = c_string(CALL, name)?;
        // SAFETY: errno is this thread's; c_name is NUL-terminated.
        let raw = unsafe {
            *ffi::__errno_location() = 0;
            ffi::nitro_partition_create(c_name.as_ptr())
        };
        match NonNull::new(raw) {
            Some(raw) => Ok(Partition { raw, name: name.to_string() }),
            None => {
                let err = io::Error::last_os_error().raw_os_error().filter(|&e| e != 0);
                Err(Error::new(CALL, name, err.unwrap_or(errno::ENOMEM)))
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Allocates memory for `layout` in this partition; null on failure.
    /// Zero-sized layouts get a one-byte block.
    pub fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = layout.size().max(1);
        // SAFETY: raw is a live partition; any size and power-of-two
        // alignment (Layout guarantees it) are valid requests.
        let p = unsafe {
            if layout.align() <= MIN_ALIGN {
                ffi::nitro_partition_malloc(self.raw.as_ptr(), size)
            } else {
                ffi::nitro_partition_aligned_alloc(self.raw.as_ptr(), layout.align(), size)
            }
        };
        p.cast()
    }

    /// Frees a block of this partition.
    ///
    /// # Safety
    /// `ptr` came from [`alloc`](Self::alloc) or [`realloc`](Self::realloc)
    /// of this partition and was not freed. (A pointer of another partition
    /// is reported as misuse and ends the process.)
    pub unsafe fn dealloc(&self, ptr: *mut u8) {
        ffi::nitro_partition_free(self.raw.as_ptr(), ptr.cast());
    }

    /// Resizes a block of this partition to `new_size`, keeping its contents
    /// up to the smaller size and `layout`'s alignment; null on failure (the
    /// block is then unchanged).
    ///
    /// # Safety
    /// `ptr` came from this partition with `layout` and was not freed.
    pub unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_size = new_size.max(1);
        if layout.align() <= MIN_ALIGN {
            return ffi::nitro_partition_realloc(self.raw.as_ptr(), ptr.cast(), new_size).cast();
        }
        // nitro_partition_realloc keeps the minimum alignment only.
        let new_layout = match Layout::from_size_align(new_size, layout.align()) {
            Ok(l) => l,
            Err(_) => return ptr::null_mut(),
        };
        let q = self.alloc(new_layout);
        if !q.is_null() {
            ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
            self.dealloc(ptr);
        }
        q
    }

    /// `true` when `ptr` points into memory of this partition (live or
    /// free). Only the address is inspected.
    pub fn owns(&self, ptr: *const u8) -> bool {
        // SAFETY: nitro_partition_of only looks the address up.
        unsafe { ffi::nitro_partition_of(ptr.cast()) == self.raw.as_ptr() }
    }

    /// Moves `value` into a block of this partition. Err with ENOMEM when
    /// there is no memory.
    pub fn boxed<T>(&self, value: T) -> Result<PartitionBox<'_, T>, Error> {
        let p = self.alloc(Layout::new::<T>()).cast::<T>();
        match NonNull::new(p) {
            Some(ptr) => {
                // SAFETY: ptr is a fresh block with T's size and alignment.
                unsafe { ptr.as_ptr().write(value) };
                Ok(PartitionBox { ptr, partition: self })
            }
            None => Err(Error::new("nitro_partition_malloc", self.name.clone(), errno::ENOMEM)),
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        // SAFETY: raw is a live partition other than the default one, and
        // no PartitionBox borrows it any more.
        let rc = unsafe { ffi::nitro_partition_destroy(self.raw.as_ptr()) };
        debug_assert_eq!(rc, 0, "nitro_partition_destroy({:?})", self.name);
    }
}

impl fmt::Debug for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partition").field("name", &self.name).finish()
    }
}

/// A value in a block of a [`Partition`], freed into it on drop: a `Box`
/// whose memory is the partition's.
pub struct PartitionBox<'p, T> {
    ptr: NonNull<T>,
    partition: &'p Partition,
}

// SAFETY: the box owns its T like Box does; the partition is Sync.
unsafe impl<T: Send> Send for PartitionBox<'_, T> {}
unsafe impl<T: Sync> Sync for PartitionBox<'_, T> {}

impl<'p, T> PartitionBox<'p, T> {
    /// The address of the value.
    pub fn as_ptr(this: &Self) -> *const T {
        this.ptr.as_ptr()
    }

    /// Moves the value out and frees its block.
    pub fn into_inner(this: Self) -> T {
        let this = std::mem::ManuallyDrop::new(this);
        // SAFETY: the value is read once, then its block is freed unread.
        unsafe {
            let value = this.ptr.as_ptr().read();
            this.partition.dealloc(this.ptr.as_ptr().cast());
            value
        }
    }
}

impl<T> Deref for PartitionBox<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: ptr holds a live T for the box's lifetime.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for PartitionBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and the box is borrowed mutably.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for PartitionBox<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the box owns the value and its block of this partition.
        unsafe {
            ptr::drop_in_place(self.ptr.as_ptr());
            self.partition.dealloc(self.ptr.as_ptr().cast());
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for PartitionBox<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}
