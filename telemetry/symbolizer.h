// What a dump needs to make addresses meaningful to others: the loaded
// objects' code mappings (path, addresses, file offset, GNU build ID), for
// pprof's mappings and the recording's, and function names from each
// object's ELF symbol table (.symtab, else .dynsym), which also names the
// static and hidden functions dladdr cannot. Used only while dumping (never
// inside malloc): it calls dl_iterate_phdr and maps files, and takes its
// memory from mmap, not from the heap it describes.
#ifndef NITROHEAP_TELEMETRY_SYMBOLIZER_H_
#define NITROHEAP_TELEMETRY_SYMBOLIZER_H_

#include <stddef.h>
#include <stdint.h>

namespace nitro::telemetry {

struct CodeMapping {
  uint64_t start, limit;  // [start, limit): an executable PT_LOAD segment, as loaded
  uint64_t file_offset;   // of start, in the file
  uint64_t bias;          // load bias: symbol value = address - bias
  char path[256];
  char build_id[41];      // lowercase hex, or empty
};

class Symbolizer {
 public:
  Symbolizer();
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  size_t mapping_count() const { return count_; }
  const CodeMapping& mapping(size_t i) const { return mappings_[i]; }
  // The index of the mapping holding `address`, or -1.
  int MappingFor(uint64_t address) const;
  // The (mangled) name of the function holding `address`, and the offset
  // into it; nullptr when no symbol covers it. For a return address, pass
  // the address minus one (the call instruction).
  const char* FunctionName(uint64_t address, uint64_t* offset);
  // True for an address in NitroHeap's own code: the preload library's
  // text, or, linked into a program, NitroHeap's functions by name.
  bool IsNitroHeapCode(uint64_t address);

 private:
  struct Table;
  Table* TableFor(int mapping);

  CodeMapping* mappings_ = nullptr;
  Table* tables_ = nullptr;
  size_t count_ = 0;
  size_t bytes_ = 0;
  int own_ = -1;          // the mapping of NitroHeap's code
  bool own_object_ = false;  // NitroHeap is a shared object of its own (LD_PRELOAD)
};

}  // namespace nitro::telemetry

#endif  // NITROHEAP_TELEMETRY_SYMBOLIZER_H_
