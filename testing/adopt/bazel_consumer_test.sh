#!/bin/bash
# Another Bazel workspace that builds NitroHeap from this repository's
# sources, the way README's "Bazel workspace" section says: a WORKSPACE with
# local_repository + nitroheap_deps() and nothing else (no .bazelrc, default
# -c fastbuild), a cc_binary with malloc = "@nitroheap//abi:malloc". Built
# offline with its own Bazel (own --output_user_root, own HOME; the system
# bazelrc stays: Debian's Bazel finds its install base there), with gcc and
# with clang; the program must run on NitroHeap, and every compile of
# NitroHeap's sources must be -O2, frame pointers, C++17, without -Werror.
set -u
workspace_file="$1" workspace_in="$2" build_in="$3" app_cc="$4" check_flags="$5"
nitroheap=$(dirname "$(readlink -f "$workspace_file")")
bazel=/usr/bin/bazel
[ -x "$bazel" ] || { echo "FAIL: $bazel not found"; exit 1; }

# A short path: the nested server's socket lives under --output_user_root.
tmp=$(mktemp -d /tmp/nitroheap_consumer.XXXXXX)
ws="$tmp/consumer"
mkdir -p "$ws" "$tmp/home"
sed "s|@NITROHEAP@|$nitroheap|" "$workspace_in" > "$ws/WORKSPACE"
cp "$build_in" "$ws/BUILD.bazel"
cp "$app_cc" "$ws/app.cc"

consumer_bazel() {  # CC CXX BAZEL-ARGS...
  local cc="$1" cxx="$2"
  shift 2
  (cd "$ws" && env -i HOME="$tmp/home" PATH=/usr/bin:/bin USER="${USER:-root}" \
     CC="$cc" CXX="$cxx" "$bazel" --output_user_root="$tmp/root" \
     --max_idle_secs=60 "$@")
}
cleanup() {
  consumer_bazel gcc g++ shutdown >/dev/null 2>&1
  chmod -R u+w "$tmp" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

passed=0 failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }

for compiler in gcc:g++ clang:clang++; do
  cc="${compiler%%:*}" cxx="${compiler#*:}"
  start=$SECONDS
  if ! consumer_bazel "$cc" "$cxx" build //:app >"$tmp/build.log" 2>&1; then
    fail "$cc: bazel build //:app in the consumer workspace"
    tail -40 "$tmp/build.log"
    continue
  fi
  pass "$cc: bazel build //:app ($((SECONDS - start)) s)"

  out=$("$ws/bazel-bin/app" 2>&1)
  if [ "$out" = "active=1 mode=nitro malloc_owned=1 new_owned=1" ]; then
    pass "$cc: app runs on NitroHeap: $out"
  else
    fail "$cc: app: expected 'active=1 mode=nitro malloc_owned=1 new_owned=1', got '$out'"
  fi

  if consumer_bazel "$cc" "$cxx" aquery 'mnemonic("CppCompile", deps(//:app))' \
       --output=jsonproto >"$tmp/aquery.json" 2>"$tmp/aquery.log" &&
     /usr/bin/python3 "$check_flags" "$tmp/aquery.json" k8-fastbuild "$cc"; then
    pass "$cc: NitroHeap's compile flags in the consumer's fastbuild"
  else
    fail "$cc: NitroHeap's compile flags in the consumer's fastbuild"
    tail -5 "$tmp/aquery.log"
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
