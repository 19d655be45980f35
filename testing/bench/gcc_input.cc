// A medium C++ translation unit for the benchmark suite's compiler workload:
// `g++ -std=c++17 -O2 -c gcc_input.cc` under each allocator. Standard
// headers with heavy templates (<regex>, <map>, <iostream>, ...), plus
// template code of its own, so the compiler allocates a lot.
#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

namespace bench {

template <typename K, typename V>
class Registry {
 public:
  void Add(const K& k, V v) { items_[k].push_back(std::move(v)); }
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& [k, vs] : items_) {
      for (const auto& v : vs) f(k, v);
    }
  }
  size_t Size() const {
    return std::accumulate(items_.begin(), items_.end(), size_t{0},
                           [](size_t n, const auto& kv) { return n + kv.second.size(); });
  }

 private:
  std::map<K, std::vector<V>> items_;
};

template <typename T, size_t N>
struct Matrix {
  T m[N][N] = {};
  Matrix operator*(const Matrix& o) const {
    Matrix r;
    for (size_t i = 0; i < N; i++)
      for (size_t j = 0; j < N; j++)
        for (size_t k = 0; k < N; k++) r.m[i][j] += m[i][k] * o.m[k][j];
    return r;
  }
};

template <typename... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <typename... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

using Value = std::variant<int, double, std::string, std::vector<int>>;

std::string Describe(const Value& v) {
  return std::visit(Overloaded{
                        [](int i) { return "int:" + std::to_string(i); },
                        [](double d) { return "double:" + std::to_string(d); },
                        [](const std::string& s) { return "string:" + s; },
                        [](const std::vector<int>& xs) { return "vec:" + std::to_string(xs.size()); },
                    },
                    v);
}

template <int N>
struct Fib {
  static constexpr long value = Fib<N - 1>::value + Fib<N - 2>::value;
};
template <>
struct Fib<0> {
  static constexpr long value = 0;
};
template <>
struct Fib<1> {
  static constexpr long value = 1;
};

template <typename T>
std::vector<T> SortedUnique(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::vector<std::string> Tokens(const std::string& text) {
  static const std::regex word(R"(([A-Za-z_][A-Za-z0-9_]*)|(\d+(\.\d+)?)|([-+*/=<>!]+))");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), word); it != std::sregex_iterator(); ++it) {
    out.push_back(it->str());
  }
  return out;
}

std::map<std::string, int> WordCount(const std::vector<std::string>& words) {
  std::map<std::string, int> counts;
  for (const auto& w : words) counts[w]++;
  return counts;
}

template <typename Container>
std::string Join(const Container& c, const std::string& sep) {
  std::ostringstream os;
  bool first = true;
  for (const auto& x : c) {
    if (!first) os << sep;
    os << x;
    first = false;
  }
  return os.str();
}

struct Shape {
  virtual ~Shape() = default;
  virtual double Area() const = 0;
  virtual std::string Name() const = 0;
};
struct Circle : Shape {
  double r;
  explicit Circle(double rr) : r(rr) {}
  double Area() const override { return 3.14159265358979 * r * r; }
  std::string Name() const override { return "circle"; }
};
struct Rect : Shape {
  double w, h;
  Rect(double ww, double hh) : w(ww), h(hh) {}
  double Area() const override { return w * h; }
  std::string Name() const override { return "rect"; }
};

template <typename T>
class Graph {
 public:
  void Edge(const T& a, const T& b) {
    adj_[a].insert(b);
    adj_[b].insert(a);
  }
  std::vector<T> Bfs(const T& start) const {
    std::vector<T> order;
    std::set<T> seen{start};
    std::vector<T> frontier{start};
    while (!frontier.empty()) {
      std::vector<T> next;
      for (const auto& n : frontier) {
        order.push_back(n);
        auto it = adj_.find(n);
        if (it == adj_.end()) continue;
        for (const auto& m : it->second) {
          if (seen.insert(m).second) next.push_back(m);
        }
      }
      frontier = std::move(next);
    }
    return order;
  }

 private:
  std::unordered_map<T, std::set<T>> adj_;
};

}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  Registry<std::string, Value> reg;
  reg.Add("a", 1);
  reg.Add("b", 2.5);
  reg.Add("c", std::string("three"));
  reg.Add("d", std::vector<int>{1, 2, 3});
  reg.ForEach([](const std::string& k, const Value& v) { std::cout << k << "=" << Describe(v) << "\n"; });
  auto words = Tokens("let x = 42 + y * 3.5; if x >= 10 then print x else print y");
  auto counts = WordCount(words);
  std::cout << Join(SortedUnique(words), " ") << "\n" << counts.size() << "\n";
  Matrix<double, 4> m;
  for (int i = 0; i < 4; i++) m.m[i][i] = 2;
  auto p = m * m * m;
  std::cout << p.m[0][0] << " " << Fib<40>::value << "\n";
  std::vector<std::unique_ptr<Shape>> shapes;
  shapes.push_back(std::make_unique<Circle>(1.5));
  shapes.push_back(std::make_unique<Rect>(2, 3));
  for (const auto& s : shapes) std::cout << s->Name() << " " << s->Area() << "\n";
  Graph<int> g;
  for (int i = 0; i < 20; i++) g.Edge(i, (i * 7 + 3) % 20);
  std::cout << Join(g.Bfs(0), ",") << "\n";
  std::map<std::tuple<int, std::string>, std::vector<double>> tm;
  tm[{argc, argv[0]}].push_back(1.0);
  std::function<int(int)> fact = [&](int n) { return n <= 1 ? 1 : n * fact(n - 1); };
  std::cout << fact(10) << " " << tm.size() << "\n";
  return 0;
}
