// nitroheap._native: the C side of the `nitroheap` Python package.
//
// It never links NitroHeap. Every function of NitroHeap's extension API is
// looked up at run time with dlsym(RTLD_DEFAULT, ...), so it talks to the
// allocator that serves the interpreter (LD_PRELOAD=libnitroheap.so, or a
// program linked with //abi:malloc that exports its symbols), and the module
// loads into any interpreter: with nothing of NitroHeap's in this shared
// object there is no initial-exec TLS to fail dlopen, and no second heap.
//
// It also reads another process's live-statistics segment
// (telemetry/shm_layout.h) with the seqlock protocol, which needs real
// atomic loads and fences.
#include <cxxabi.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <pybind11/pybind11.h>

#include "nitroheap/nitroheap.h"
#include "telemetry/shm_layout.h"

namespace py = pybind11;

namespace {

// ---- the serving allocator's API, found at run time -------------------------

struct Api {
  decltype(&nitro_is_active) is_active = nullptr;
  decltype(&nitro_heap_mode) heap_mode = nullptr;
  decltype(&nitro_owns) owns = nullptr;
  decltype(&nitro_partition_create) partition_create = nullptr;
  decltype(&nitro_partition_destroy) partition_destroy = nullptr;
  decltype(&nitro_partition_name) partition_name = nullptr;
  decltype(&nitro_partition_malloc) partition_malloc = nullptr;
  decltype(&nitro_partition_free) partition_free = nullptr;
  decltype(&nitro_release_free_memory) release_free_memory = nullptr;
  decltype(&nitro_stats_json) stats_json = nullptr;
  decltype(&nitro_ctl) ctl = nullptr;
  decltype(&nitro_flight_recorder_dump) flight_recorder_dump = nullptr;
  decltype(&nitro_heap_profile_dump) heap_profile_dump = nullptr;
};

template <typename F>
void Resolve(F* slot, const char* name) {
  *slot = reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

const Api& GetApi() {
  static const Api api = [] {
    Api a;
    Resolve(&a.is_active, "nitro_is_active");
    Resolve(&a.heap_mode, "nitro_heap_mode");
    Resolve(&a.owns, "nitro_owns");
    Resolve(&a.partition_create, "nitro_partition_create");
    Resolve(&a.partition_destroy, "nitro_partition_destroy");
    Resolve(&a.partition_name, "nitro_partition_name");
    Resolve(&a.partition_malloc, "nitro_partition_malloc");
    Resolve(&a.partition_free, "nitro_partition_free");
    Resolve(&a.release_free_memory, "nitro_release_free_memory");
    Resolve(&a.stats_json, "nitro_stats_json");
    Resolve(&a.ctl, "nitro_ctl");
    Resolve(&a.flight_recorder_dump, "nitro_flight_recorder_dump");
    Resolve(&a.heap_profile_dump, "nitro_heap_profile_dump");
    return a;
  }();
  return api;
}

// Raised as nitroheap._native.Unavailable; the Python layer turns it into
// NotActiveError with the full explanation.
PyObject* g_unavailable = nullptr;

[[noreturn]] void Unavailable(const char* symbol) {
  std::string msg = "symbol ";
  msg += symbol;
  msg += " not found: NitroHeap is not loaded in this process";
  PyErr_SetString(g_unavailable, msg.c_str());
  throw py::error_already_set();
}

template <typename F>
F Need(F f, const char* symbol) {
  if (f == nullptr) Unavailable(symbol);
  return f;
}

[[noreturn]] void RaiseErrno(int err, const std::string& what) {
  errno = err;
  PyErr_SetFromErrnoWithFilename(PyExc_OSError, what.c_str());
  throw py::error_already_set();
}

py::dict Symbols() {
  const Api& a = GetApi();
  py::dict d;
  d["nitro_is_active"] = a.is_active != nullptr;
  d["nitro_heap_mode"] = a.heap_mode != nullptr;
  d["nitro_partition_create"] = a.partition_create != nullptr;
  d["nitro_stats_json"] = a.stats_json != nullptr;
  d["nitro_ctl"] = a.ctl != nullptr;
  d["nitro_flight_recorder_dump"] = a.flight_recorder_dump != nullptr;
  d["nitro_heap_profile_dump"] = a.heap_profile_dump != nullptr;
  return d;
}

// -1: NitroHeap is not loaded; 0: loaded in legacy mode; 1: serving malloc.
int IsActive() {
  const Api& a = GetApi();
  if (a.is_active == nullptr) return -1;
  return a.is_active() ? 1 : 0;
}

py::object HeapMode() {
  const Api& a = GetApi();
  if (a.heap_mode == nullptr) return py::none();
  const char* m = a.heap_mode();
  return m ? py::object(py::str(m)) : py::none();
}

py::bytes StatsJson() {
  auto fn = Need(GetApi().stats_json, "nitro_stats_json");
  // The document may grow between the sizing call and the real one (a
  // partition created by another thread): retry with the new size.
  size_t want = fn(nullptr, 0);
  for (int attempt = 0; attempt < 8; attempt++) {
    std::vector<char> buf(want + 4096);
    size_t n;
    {
      py::gil_scoped_release nogil;
      n = fn(buf.data(), buf.size());
    }
    if (n < buf.size()) return py::bytes(buf.data(), n);
    want = n;
  }
  throw std::runtime_error("nitro_stats_json: the document kept growing");
}

uintptr_t PartitionCreate(const std::string& name) {
  auto fn = Need(GetApi().partition_create, "nitro_partition_create");
  errno = 0;
  nitro_partition_t* p = fn(name.c_str());
  if (p == nullptr) RaiseErrno(errno ? errno : ENOMEM, "nitro_partition_create(" + name + ")");
  return reinterpret_cast<uintptr_t>(p);
}

void PartitionDestroy(uintptr_t handle) {
  auto fn = Need(GetApi().partition_destroy, "nitro_partition_destroy");
  errno = 0;
  if (fn(reinterpret_cast<nitro_partition_t*>(handle)) != 0) {
    RaiseErrno(errno ? errno : EINVAL, "nitro_partition_destroy");
  }
}

std::string PartitionName(uintptr_t handle) {
  auto fn = Need(GetApi().partition_name, "nitro_partition_name");
  const char* n = fn(reinterpret_cast<const nitro_partition_t*>(handle));
  return n ? n : "";
}

uintptr_t PartitionMalloc(uintptr_t handle, size_t size) {
  auto fn = Need(GetApi().partition_malloc, "nitro_partition_malloc");
  void* p = fn(reinterpret_cast<nitro_partition_t*>(handle), size);
  if (p == nullptr) throw std::bad_alloc();
  return reinterpret_cast<uintptr_t>(p);
}

void PartitionFree(uintptr_t handle, uintptr_t address) {
  auto fn = Need(GetApi().partition_free, "nitro_partition_free");
  fn(reinterpret_cast<nitro_partition_t*>(handle), reinterpret_cast<void*>(address));
}

// Copies `size` bytes in or out of memory a Partition handed out (the
// Python layer checks the range belongs to a live allocation).
void Write(uintptr_t address, py::bytes data) {
  std::string s = data;
  memcpy(reinterpret_cast<void*>(address), s.data(), s.size());
}

py::bytes Read(uintptr_t address, size_t size) {
  return py::bytes(reinterpret_cast<const char*>(address), size);
}

bool Owns(uintptr_t address) {
  auto fn = Need(GetApi().owns, "nitro_owns");
  return fn(reinterpret_cast<const void*>(address)) != 0;
}

size_t ReleaseFreeMemory() {
  auto fn = Need(GetApi().release_free_memory, "nitro_release_free_memory");
  py::gil_scoped_release nogil;
  return fn();
}

int Dump(decltype(&nitro_flight_recorder_dump) fn, const std::string& path) {
  py::gil_scoped_release nogil;
  return fn(path.c_str());
}

void FlightRecorderDump(const std::string& path) {
  int err = Dump(Need(GetApi().flight_recorder_dump, "nitro_flight_recorder_dump"), path);
  if (err != 0) RaiseErrno(err, path);
}

void HeapProfileDump(const std::string& path) {
  int err = Dump(Need(GetApi().heap_profile_dump, "nitro_heap_profile_dump"), path);
  if (err != 0) RaiseErrno(err, path);
}

// nitro_ctl read: an integer (8 bytes) or a string; which one is not said
// by the name, so ask for the length first (strings answer with their
// size when oldp is NULL, integers with EINVAL for a wrong size).
py::object CtlRead(const std::string& name) {
  auto fn = Need(GetApi().ctl, "nitro_ctl");
  uint64_t v = 0;
  size_t len = sizeof(v);
  int err = fn(name.c_str(), &v, &len, nullptr, 0);
  if (err == 0 && len == sizeof(v)) {
    // Could still be a string of exactly 7 characters: ask for its size.
    size_t need = 0;
    if (fn(name.c_str(), nullptr, &need, nullptr, 0) == 0 && need == sizeof(v)) {
      std::string s(reinterpret_cast<const char*>(&v), sizeof(v));
      if (s.back() == '\0') return py::str(s.c_str());
    }
    return py::int_(v);
  }
  if (err == EINVAL || (err == 0 && len != sizeof(v))) {
    size_t need = 0;
    err = fn(name.c_str(), nullptr, &need, nullptr, 0);
    if (err == 0 && need > 0) {
      std::vector<char> buf(need + 1);
      len = need;
      err = fn(name.c_str(), buf.data(), &len, nullptr, 0);
      if (err == 0) {
        buf[need] = '\0';
        return py::str(buf.data());
      }
    }
  }
  RaiseErrno(err, "nitro_ctl(" + name + ")");
}

void CtlWrite(const std::string& name, py::object value) {
  auto fn = Need(GetApi().ctl, "nitro_ctl");
  int err;
  if (value.is_none()) {
    err = fn(name.c_str(), nullptr, nullptr, nullptr, 0);
  } else if (py::isinstance<py::int_>(value)) {
    // Numbers (writable options, contract limits) travel as a uint64_t.
    uint64_t v = value.cast<uint64_t>();
    err = fn(name.c_str(), nullptr, nullptr, &v, sizeof(v));
  } else {
    std::string s = py::str(value);
    err = fn(name.c_str(), nullptr, nullptr, s.c_str(), s.size() + 1);
  }
  if (err != 0) RaiseErrno(err, "nitro_ctl(" + name + ")");
}

std::string Demangle(const std::string& name) {
  if (name.size() < 2 || name[0] != '_' || name[1] != 'Z') return name;
  int status = 0;
  char* out = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
  if (status != 0 || out == nullptr) return name;
  std::string s(out);
  free(out);
  return s;
}

// ---- the live-statistics segment of another process ---------------------------

uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Reads exactly `n` bytes at `off`; false on a short read or an error.
bool ReadAt(int fd, void* buf, size_t n, off_t off) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = pread(fd, p, n, off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
    off += r;
  }
  return true;
}

const char* FileType(mode_t m) {
  return S_ISFIFO(m) ? "fifo" : S_ISDIR(m) ? "directory" : S_ISCHR(m) ? "character device"
         : S_ISBLK(m) ? "block device" : S_ISSOCK(m) ? "socket" : S_ISLNK(m) ? "symbolic link" : "other";
}

// The largest segment a reader looks at: twice version 1's 512 KiB (whose
// JSON, 16 partitions and 88 classes, takes a few KiB). Bounded by time,
// not memory: the payload is parsed and validated in Python, and 16 MiB of
// hostile JSON took over 5 s a read, 1 MiB takes under half a second.
// _live.MAX_SEGMENT_BYTES is the same.
constexpr size_t kMaxSegmentBytes = size_t{1} << 20;

// Reads a segment that anybody may have planted at the path, so it trusts
// nothing in it: opened without following a link and without blocking on a
// FIFO, only a regular file of at most kMaxSegmentBytes, read with pread
// (never mapped: a file truncated under a mapping kills the reader with
// SIGBUS), every header field checked against the file's size.
//
// Returns a dict: "status" is "ok", "not_regular" (with "file_type"),
// "too_large", "short" (smaller than its header), "bad_magic",
// "bad_version", "corrupt" (header fields that contradict the file),
// "empty" (no payload written yet) or "busy" (the writer never left a
// consistent state within timeout_s); always "file_size", "owner_uid" and
// "file_mode" once the file could be opened; with "ok": the header fields
// and "payload" (bytes). Errors opening raise OSError with the errno
// (FileNotFoundError: no segment, PermissionError: not readable).
py::dict ShmRead(const std::string& path, double timeout_s) {
  py::dict out;
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0 && errno == ELOOP) {
    out["status"] = "not_regular";
    out["file_type"] = "symbolic link";
    return out;
  }
  if (fd < 0) RaiseErrno(errno, path);
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) RaiseErrno(errno, path);
  out["owner_uid"] = static_cast<uint64_t>(st.st_uid);
  out["file_mode"] = static_cast<uint64_t>(st.st_mode & 07777);
  if (!S_ISREG(st.st_mode)) {
    out["status"] = "not_regular";
    out["file_type"] = FileType(st.st_mode);
    return out;
  }
  size_t size = static_cast<size_t>(st.st_size);
  out["file_size"] = size;
  if (size > kMaxSegmentBytes) {
    out["status"] = "too_large";
    return out;
  }
  if (size < NITRO_SHM_HEADER_SIZE) {
    out["status"] = "short";
    return out;
  }
  nitro_shm_header h;
  if (!ReadAt(fd, &h, sizeof(h), 0)) {
    out["status"] = "short";
    return out;
  }
  if (memcmp(h.magic, NITRO_SHM_MAGIC, sizeof(NITRO_SHM_MAGIC)) != 0) {
    out["status"] = "bad_magic";
    out["magic"] = py::bytes(h.magic, sizeof(h.magic));
    return out;
  }
  out["version"] = h.version;
  if (h.version != NITRO_SHM_VERSION) {
    out["status"] = "bad_version";
    return out;
  }
  if (h.header_size < NITRO_SHM_HEADER_SIZE || h.header_size > size) {
    out["status"] = "bad_version";
    out["header_size"] = h.header_size;
    return out;
  }
  const uint32_t header_size = h.header_size;
  const size_t room = size - header_size;
  std::vector<char> copy(room);
  uint64_t deadline = NowNs() + static_cast<uint64_t>((timeout_s > 0 ? timeout_s : 0) * 1e9);
  int retries = 0;
  const char* status = "busy";
  {
    py::gil_scoped_release nogil;
    for (;;) {
      uint64_t s2 = 0;
      if (!ReadAt(fd, &h, sizeof(h), 0)) {
        status = "short";  // truncated while we read
        break;
      }
      if ((h.sequence & 1) == 0) {
        if (h.payload_length > room || h.payload_length > h.payload_capacity) {
          // Consistent and contradictory is a broken or hostile segment;
          // under a writer it can be a torn read, so confirm it first.
          if (ReadAt(fd, &s2, sizeof(s2), offsetof(nitro_shm_header, sequence)) && s2 == h.sequence) {
            status = "corrupt";
            break;
          }
        } else if (ReadAt(fd, copy.data(), h.payload_length, header_size) &&
                   ReadAt(fd, &s2, sizeof(s2), offsetof(nitro_shm_header, sequence)) && s2 == h.sequence) {
          status = h.payload_length == 0 ? "empty" : "ok";
          break;
        }
      }
      if (NowNs() > deadline) break;
      retries++;
      struct timespec pause = {0, retries < 100 ? 20000 : 1000000};  // 20 us, then 1 ms
      nanosleep(&pause, nullptr);
    }
  }
  out["status"] = status;
  out["retries"] = retries;
  if (strcmp(status, "ok") == 0 || strcmp(status, "empty") == 0 || strcmp(status, "corrupt") == 0) {
    out["pid"] = h.pid;
    out["sequence"] = h.sequence;
    out["update_time_ns"] = h.update_time_ns;
    out["updates"] = h.updates;
    out["payload_capacity"] = h.payload_capacity;
    out["payload_length"] = h.payload_length;
    out["header_size"] = header_size;
  }
  if (strcmp(status, "ok") == 0) out["payload"] = py::bytes(copy.data(), h.payload_length);
  return out;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "NitroHeap's extension API, found at run time with dlsym(RTLD_DEFAULT)";
  g_unavailable = PyErr_NewException("nitroheap._native.Unavailable", PyExc_RuntimeError, nullptr);
  m.attr("Unavailable") = py::handle(g_unavailable);
  m.attr("SHM_MAGIC") = py::bytes(NITRO_SHM_MAGIC, sizeof(NITRO_SHM_MAGIC));
  m.attr("SHM_VERSION") = NITRO_SHM_VERSION;
  m.attr("SHM_HEADER_SIZE") = NITRO_SHM_HEADER_SIZE;
  m.attr("STATS_VERSION") = NITRO_STATS_VERSION;
  m.attr("STATS_CLASSES") = NITRO_STATS_CLASSES;
  m.attr("STATS_MAX_PARTITIONS") = NITRO_STATS_MAX_PARTITIONS;

  m.def("symbols", &Symbols, "which NitroHeap symbols dlsym(RTLD_DEFAULT) finds");
  m.def("is_active", &IsActive, "-1: NitroHeap not loaded, 0: legacy mode, 1: serving malloc");
  m.def("heap_mode", &HeapMode, "nitro_heap_mode(), or None when NitroHeap is not loaded");
  m.def("stats_json", &StatsJson, "nitro_stats_json() of the serving allocator, as bytes");
  m.def("partition_create", &PartitionCreate, py::arg("name"));
  m.def("partition_destroy", &PartitionDestroy, py::arg("handle"));
  m.def("partition_name", &PartitionName, py::arg("handle"));
  m.def("partition_malloc", &PartitionMalloc, py::arg("handle"), py::arg("size"));
  m.def("partition_free", &PartitionFree, py::arg("handle"), py::arg("address"));
  m.def("write", &Write, py::arg("address"), py::arg("data"));
  m.def("read", &Read, py::arg("address"), py::arg("size"));
  m.def("owns", &Owns, py::arg("address"));
  m.def("release_free_memory", &ReleaseFreeMemory);
  m.def("flight_recorder_dump", &FlightRecorderDump, py::arg("path"));
  m.def("heap_profile_dump", &HeapProfileDump, py::arg("path"));
  m.def("ctl_read", &CtlRead, py::arg("name"));
  m.def("ctl_write", &CtlWrite, py::arg("name"), py::arg("value") = py::none());
  m.def("demangle", &Demangle, py::arg("name"));
  m.def("shm_read", &ShmRead, py::arg("path"), py::arg("timeout_s") = 1.0);
}
