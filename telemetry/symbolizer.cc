#include "telemetry/symbolizer.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace nitro::telemetry {
namespace {

constexpr size_t kMaxMappings = 1024;

void* MapAnon(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// The GNU build ID from an object's PT_NOTE segments, as loaded.
void ReadBuildId(const struct dl_phdr_info* info, char* out, size_t len) {
  out[0] = '\0';
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    auto p = static_cast<uintptr_t>(info->dlpi_addr + ph.p_vaddr);
    uintptr_t end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
      uintptr_t name = p + sizeof(ElfW(Nhdr));
      uintptr_t desc = name + ((note->n_namesz + 3) & ~3u);
      uintptr_t next = desc + ((note->n_descsz + 3) & ~3u);
      if (next > end) break;
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 &&
          memcmp(reinterpret_cast<const char*>(name), "GNU", 4) == 0 && note->n_descsz * 2 < len) {
        const auto* d = reinterpret_cast<const uint8_t*>(desc);
        for (uint32_t k = 0; k < note->n_descsz; k++) snprintf(out + 2 * k, 3, "%02x", d[k]);
        return;
      }
      p = next;
    }
  }
}

struct Collect {
  CodeMapping* out;
  size_t count;
};

int AddObject(struct dl_phdr_info* info, size_t, void* data) {
  auto* c = static_cast<Collect*>(data);
  char path[256];
  if (info->dlpi_name == nullptr || info->dlpi_name[0] == '\0') {
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);  // the program itself
    path[n > 0 ? n : 0] = '\0';
  } else {
    snprintf(path, sizeof(path), "%s", info->dlpi_name);
  }
  // Only files: the vDSO has no file to symbolize from.
  if (path[0] != '/') return 0;
  char build_id[41];
  ReadBuildId(info, build_id, sizeof(build_id));
  for (int i = 0; i < info->dlpi_phnum && c->count < kMaxMappings; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    CodeMapping& m = c->out[c->count++];
    m.start = info->dlpi_addr + ph.p_vaddr;
    m.limit = m.start + ph.p_memsz;
    m.file_offset = ph.p_offset;
    m.bias = info->dlpi_addr;
    memcpy(m.path, path, sizeof(m.path));
    memcpy(m.build_id, build_id, sizeof(m.build_id));
  }
  return 0;
}

// NitroHeap's own functions, by (mangled) name: the namespace nitro, the C
// and C++ allocation entry points, and the extension API.
bool IsNitroHeapName(const char* n) {
  static const char* const kPrefixes[] = {"_ZN5nitro", "_ZNK5nitro", "_ZZN5nitro", "nitro_", "_Znw", "_Zna",
                                          "__libc_"};
  for (const char* p : kPrefixes) {
    if (strncmp(n, p, strlen(p)) == 0) return true;
  }
  static const char* const kNames[] = {"malloc",  "calloc",   "realloc", "reallocarray", "posix_memalign",
                                       "aligned_alloc", "memalign", "valloc", "pvalloc", "mallocx",
                                       "rallocx", "xallocx"};
  for (const char* p : kNames) {
    if (strcmp(n, p) == 0) return true;
  }
  return false;
}

struct Sym {
  uint64_t value, size;
  const char* name;
};

void HeapSort(Sym* a, size_t n) {
  auto sift = [a](size_t root, size_t end) {
    for (;;) {
      size_t child = 2 * root + 1;
      if (child >= end) return;
      if (child + 1 < end && a[child].value < a[child + 1].value) child++;
      if (a[root].value >= a[child].value) return;
      Sym t = a[root];
      a[root] = a[child];
      a[child] = t;
      root = child;
    }
  };
  for (size_t i = n / 2; i-- > 0;) sift(i, n);
  for (size_t end = n; end > 1; end--) {
    Sym t = a[0];
    a[0] = a[end - 1];
    a[end - 1] = t;
    sift(0, end - 1);
  }
}

}  // namespace

struct Symbolizer::Table {
  bool tried;
  const char* file;
  size_t file_size;
  Sym* syms;
  size_t count;
  size_t syms_bytes;

  // The function symbols of the ELF file at `path`, sorted by address.
  void Load(const char* path) {
    tried = true;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return;
    struct stat st;
    void* map = MAP_FAILED;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= static_cast<off_t>(sizeof(ElfW(Ehdr)))) {
      map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    }
    close(fd);
    if (map == MAP_FAILED) return;
    file = static_cast<const char*>(map);
    file_size = static_cast<size_t>(st.st_size);
    const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(file);
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_shentsize != sizeof(ElfW(Shdr)) || eh->e_shoff > file_size ||
        eh->e_shnum > (file_size - eh->e_shoff) / sizeof(ElfW(Shdr))) {
      return;
    }
    const auto* sh = reinterpret_cast<const ElfW(Shdr)*>(file + eh->e_shoff);
    const ElfW(Shdr)* symtab = nullptr;
    for (int pass = 0; pass < 2 && symtab == nullptr; pass++) {
      for (int i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type == (pass == 0 ? SHT_SYMTAB : SHT_DYNSYM)) symtab = &sh[i];
      }
    }
    if (symtab == nullptr || symtab->sh_link >= eh->e_shnum) return;
    const ElfW(Shdr)& strtab = sh[symtab->sh_link];
    if (symtab->sh_offset > file_size || symtab->sh_size > file_size - symtab->sh_offset ||
        strtab.sh_offset > file_size || strtab.sh_size > file_size - strtab.sh_offset || strtab.sh_size == 0) {
      return;
    }
    const auto* syms_in = reinterpret_cast<const ElfW(Sym)*>(file + symtab->sh_offset);
    size_t n = symtab->sh_size / sizeof(ElfW(Sym));
    const char* names = file + strtab.sh_offset;
    auto wanted = [&](const ElfW(Sym)& s) {
      int type = ELF64_ST_TYPE(s.st_info);
      return (type == STT_FUNC || type == STT_GNU_IFUNC) && s.st_shndx != SHN_UNDEF && s.st_value != 0 &&
             s.st_size != 0 && s.st_name < strtab.sh_size;
    };
    size_t wanted_count = 0;
    for (size_t i = 0; i < n; i++) wanted_count += wanted(syms_in[i]) ? 1 : 0;
    if (wanted_count == 0) return;
    syms_bytes = wanted_count * sizeof(Sym);
    syms = static_cast<Sym*>(MapAnon(syms_bytes));
    if (syms == nullptr) return;
    names = file + strtab.sh_offset;
    // The string table must end in a NUL for names to be C strings.
    if (names[strtab.sh_size - 1] != '\0') return;
    for (size_t i = 0; i < n; i++) {
      if (wanted(syms_in[i])) syms[count++] = Sym{syms_in[i].st_value, syms_in[i].st_size, names + syms_in[i].st_name};
    }
    HeapSort(syms, count);
  }

  const Sym* Find(uint64_t value) const {
    size_t lo = 0, hi = count;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (syms[mid].value <= value) lo = mid + 1; else hi = mid;
    }
    // lo: the first symbol past value. Aliases and nested symbols share
    // addresses: look at the few just before.
    for (size_t i = lo; i-- > 0 && lo - i <= 4;) {
      if (value - syms[i].value < syms[i].size) return &syms[i];
    }
    return nullptr;
  }

  void Release() {
    if (syms != nullptr) munmap(syms, syms_bytes);
    if (file != nullptr) munmap(const_cast<char*>(file), file_size);
  }
};

Symbolizer::Symbolizer() {
  bytes_ = kMaxMappings * (sizeof(CodeMapping) + sizeof(Table));
  auto* mem = static_cast<char*>(MapAnon(bytes_));
  if (mem == nullptr) return;
  mappings_ = reinterpret_cast<CodeMapping*>(mem);
  tables_ = reinterpret_cast<Table*>(mem + kMaxMappings * sizeof(CodeMapping));  // zeroed by mmap
  Collect c{mappings_, 0};
  dl_iterate_phdr(AddObject, &c);
  count_ = c.count;
  own_ = MappingFor(reinterpret_cast<uintptr_t>(&IsNitroHeapName));
  if (own_ >= 0) {
    char exe[256];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    own_object_ = strcmp(exe, mappings_[own_].path) != 0;
  }
}

Symbolizer::~Symbolizer() {
  if (mappings_ == nullptr) return;
  for (size_t i = 0; i < count_; i++) tables_[i].Release();
  munmap(mappings_, bytes_);
}

int Symbolizer::MappingFor(uint64_t address) const {
  for (size_t i = 0; i < count_; i++) {
    if (address >= mappings_[i].start && address < mappings_[i].limit) return static_cast<int>(i);
  }
  return -1;
}

Symbolizer::Table* Symbolizer::TableFor(int mapping) {
  Table* t = &tables_[mapping];
  if (!t->tried) {
    // Segments of one object share its table.
    for (int i = 0; i < mapping; i++) {
      if (mappings_[i].bias == mappings_[mapping].bias && strcmp(mappings_[i].path, mappings_[mapping].path) == 0) {
        return TableFor(i);
      }
    }
    t->Load(mappings_[mapping].path);
  }
  return t;
}

const char* Symbolizer::FunctionName(uint64_t address, uint64_t* offset) {
  int m = MappingFor(address);
  if (m < 0) return nullptr;
  const Table* t = TableFor(m);
  const Sym* s = t->Find(address - mappings_[m].bias);
  if (s == nullptr) return nullptr;
  *offset = address - mappings_[m].bias - s->value;
  return s->name;
}

bool Symbolizer::IsNitroHeapCode(uint64_t address) {
  int m = MappingFor(address);
  if (m < 0 || m != own_) return false;
  if (own_object_) return true;
  uint64_t offset;
  const char* name = FunctionName(address, &offset);
  return name != nullptr && IsNitroHeapName(name);
}

}  // namespace nitro::telemetry
