#include <pybind11/pybind11.h>

namespace {
int Add(int a, int b) { return a + b; }
}  // namespace

PYBIND11_MODULE(scaffold_ext, m) {
  m.doc() = "scaffold check extension";
  m.def("add", &Add, "Adds two ints");
}
