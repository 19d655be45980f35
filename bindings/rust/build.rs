//! Links NitroHeap into this crate, in one of two ways.
//!
//! **Static (default).** The allocator's C++ sources (`core/`, `abi/` and
//! `telemetry/` of the repository around this crate: what
//! `//abi:libnitroheap.so` is made of) are compiled with the system C++
//! compiler into `OUT_DIR`, joined into one relocatable object and archived
//! as `libnitroheap.a`. One object, because the linker takes an archive
//! member whole or not at all: the Rust allocator's first reference pulls in
//! `malloc`, `operator new` and the telemetry start-up code with it, as
//! `alwayslink` does for `//abi:malloc`. Symbols the library does not export
//! are made local, so only its ABI can meet the program's other symbols.
//!
//! **Shared (opt-in).** With the cargo feature `dynamic`, or when
//! `NITROHEAP_LIB_DIR` is set, `libnitroheap.so` is linked from
//! `NITROHEAP_LIB_DIR` (default: `bazel-bin/abi` of the repository). A
//! relative `NITROHEAP_LIB_DIR` is taken from the directory cargo was started
//! in.
//!
//! Kept buildable by Rust 1.63 (Debian 12's cargo): no `let else`, no
//! `cargo::` instructions.

use std::env;
use std::collections::hash_map::DefaultHasher;
use std::ffi::OsString;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::SystemTime;

/// The packages whose library sources make up `//abi:libnitroheap.so`:
/// `//abi:malloc` and its dependencies `//core:*` and `//telemetry:*`.
const LIBRARY_DIRS: &[&str] = &["core", "abi", "telemetry"];

/// What `build -c opt` gives with Bazel's default toolchain (see .bazelrc):
/// the flags before .bazelrc's `--copt`s and the packages' `copts`.
const TOOLCHAIN_OPT_FLAGS: &[&str] = &[
    "-U_FORTIFY_SOURCE",
    "-fstack-protector",
    "-O2",
    "-D_FORTIFY_SOURCE=1",
    "-DNDEBUG",
];

fn main() {
    println!("cargo:rerun-if-env-changed=NITROHEAP_LIB_DIR");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    // The crate lives at bindings/rust of the NitroHeap repository.
    let repo = manifest_dir.join("..").join("..");
    let repo = repo.canonicalize().unwrap_or(repo);

    let lib_dir = env::var_os("NITROHEAP_LIB_DIR").filter(|dir| !dir.is_empty());
    let linked_statically = lib_dir.is_none() && env::var_os("CARGO_FEATURE_DYNAMIC").is_none();
    if linked_statically {
        link_static(&repo);
    } else {
        link_shared(&repo, lib_dir);
    }
    // Dependents' build scripts can compile C against the extension API
    // (DEP_NITROHEAP_INCLUDE).
    println!("cargo:include={}", repo.join("abi").join("include").display());

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let linkage = format!(
        "/// `true` when NitroHeap is compiled into this program (the default),\n\
         /// `false` when `libnitroheap.so` is linked (feature `dynamic` or\n\
         /// `NITROHEAP_LIB_DIR`).\n\
         pub const LINKED_STATICALLY: bool = {linked_statically};\n"
    );
    write_if_changed(&out_dir.join("linkage.rs"), &linkage);
}

/// Prints a one-line error and fails the build.
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

fn write_if_changed(path: &Path, text: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        if let Err(e) = fs::write(path, text) {
            fail(&format!("cannot write {}: {e}", path.display()));
        }
    }
}

// ---- Shared library ---------------------------------------------------------

fn link_shared(repo: &Path, lib_dir: Option<OsString>) {
    let given = lib_dir.as_ref().map(PathBuf::from);
    let dir = match &given {
        Some(dir) if dir.is_relative() => invocation_dir().join(dir),
        Some(dir) => dir.clone(),
        None => repo.join("bazel-bin").join("abi"),
    };
    let lib = dir.join("libnitroheap.so");
    if !lib.is_file() {
        let source = match &given {
            Some(given) => format!("NITROHEAP_LIB_DIR={}", given.display()),
            None => "feature `dynamic`".to_string(),
        };
        fail(&format!(
            "{source}: {} not found; build it with `bazel build //abi:libnitroheap.so` in {} \
             (it lands in bazel-bin/abi), or link NitroHeap statically: no feature `dynamic`, \
             NITROHEAP_LIB_DIR unset",
            lib.display(),
            repo.display()
        ));
    }
    println!("cargo:rerun-if-changed={}", lib.display());
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=dylib=nitroheap");
    // Reaches this crate's own tests and examples only: cargo passes link
    // arguments to no other package. Dependents add their own rpath from
    // DEP_NITROHEAP_LIB_DIR (see the README) or set LD_LIBRARY_PATH.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
    println!("cargo:lib_dir={}", dir.display());
}

/// The directory cargo was started in. Build scripts run in the crate's own
/// directory; the caller's reaches them only as $PWD, which the shell keeps.
fn invocation_dir() -> PathBuf {
    println!("cargo:rerun-if-env-changed=PWD");
    match env::var_os("PWD").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => fail(
            "NITROHEAP_LIB_DIR is a relative path and $PWD (the directory cargo was started in) \
             is not set; give NITROHEAP_LIB_DIR as an absolute path",
        ),
    }
}

// ---- Static library ---------------------------------------------------------

fn link_static(repo: &Path) {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cxx = tool("CXX", "c++");
    let objcopy = tool("OBJCOPY", "objcopy");
    let ar = tool("AR", "ar");
    println!("cargo:rerun-if-env-changed=NITROHEAP_CXXFLAGS");
    for watched in LIBRARY_DIRS.iter().copied().chain(["copts.bzl", ".bazelrc"]) {
        println!("cargo:rerun-if-changed={}", repo.join(watched).display());
    }

    let sources = library_sources(repo);
    let flags = compile_flags(repo);
    let objects = compile(repo, &out_dir, &cxx, &flags, &sources);

    let joined = out_dir.join("nitroheap-joined.o");
    let object = out_dir.join("nitroheap.o");
    let archive = out_dir.join("libnitroheap.a");
    let mut join = Command::new(&cxx);
    join.args(["-r", "-nostdlib", "-o"]).arg(&joined).args(&objects);
    run(join, "join the objects");
    let mut localize = Command::new(&objcopy);
    localize.arg("--localize-hidden").arg(&joined).arg(&object);
    run(localize, "make the library's hidden symbols local");
    let _ = fs::remove_file(&archive);
    let mut archive_cmd = Command::new(&ar);
    archive_cmd.arg("crs").arg(&archive).arg(&object);
    run(archive_cmd, "archive the library");

    println!("cargo:rustc-link-search=native={}", out_dir.display());
    println!("cargo:rustc-link-lib=static=nitroheap");
    // //abi:libnitroheap.so's and its dependencies' linkopts. No C++
    // runtime: the library names none of its symbols (abi/exported_symbols_test).
    for lib in ["dl", "pthread", "rt"] {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    // For this crate's tests, which compare the archive's exports with the
    // shared library's.
    println!("cargo:rustc-env=NITROHEAP_STATIC_ARCHIVE={}", archive.display());
}

/// A build tool: the environment variable when set, else the default.
fn tool(var: &str, default: &str) -> OsString {
    println!("cargo:rerun-if-env-changed={var}");
    env::var_os(var).filter(|v| !v.is_empty()).unwrap_or_else(|| default.into())
}

/// Every `.cc` file of the library packages except tests, benchmarks, fuzz
/// targets and programs (a file defining `main`): the BUILD files put all
/// others into the library, so a file added there is picked up here too.
fn library_sources(repo: &Path) -> Vec<PathBuf> {
    let mut sources = Vec::new();
    for dir in LIBRARY_DIRS {
        let dir = repo.join(dir);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => fail(&format!(
                "cannot read {}: {e}; this crate builds NitroHeap from the repository around it \
                 (bindings/rust), which must be complete",
                dir.display()
            )),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let not_library = ["_test.cc", "_benchmark.cc", "_fuzz.cc"].iter().any(|s| name.ends_with(s));
            if !name.ends_with(".cc") || not_library || defines_main(&path) {
                continue;
            }
            sources.push(path);
        }
    }
    sources.sort();
    if sources.is_empty() {
        fail(&format!("no NitroHeap sources found in {}", repo.display()));
    }
    sources
}

fn defines_main(path: &Path) -> bool {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines().any(|line| line.starts_with("int main("))
}

/// Bazel's flags for the library: the toolchain's `-c opt` flags, then
/// .bazelrc's unconditional `--copt`/`--cxxopt`, then `NITRO_HEAP_COPTS`
/// from copts.bzl (without `-Werror`: warnings of another compiler must not
/// stop a consumer's build), then NITROHEAP_CXXFLAGS.
fn compile_flags(repo: &Path) -> Vec<String> {
    let mut flags: Vec<String> = TOOLCHAIN_OPT_FLAGS.iter().map(|f| f.to_string()).collect();
    flags.extend(bazelrc_copts(&repo.join(".bazelrc")));
    let copts_path = repo.join("copts.bzl");
    let copts = fs::read_to_string(&copts_path)
        .map_err(|e| e.to_string())
        .and_then(|text| starlark_string_list(&text, "NITRO_HEAP_COPTS"))
        .unwrap_or_else(|e| fail(&format!("{}: cannot read NITRO_HEAP_COPTS: {e}", copts_path.display())));
    flags.extend(copts.into_iter().filter(|f| f != "-Werror"));
    flags.push("-fPIC".into());
    flags.push(format!("-I{}", repo.display()));
    flags.push(format!("-I{}", repo.join("abi").join("include").display()));
    if let Some(extra) = env::var_os("NITROHEAP_CXXFLAGS") {
        flags.extend(extra.to_string_lossy().split_whitespace().map(String::from));
    }
    flags
}

/// The values of `build --copt=...` and `build --cxxopt=...` lines (not
/// `build:config` ones) of a .bazelrc.
fn bazelrc_copts(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut copts = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("build") {
            continue;
        }
        let words: Vec<&str> = words.collect();
        let mut i = 0;
        while i < words.len() {
            let word = words[i];
            for flag in ["--copt", "--cxxopt"] {
                if let Some(value) = word.strip_prefix(flag).and_then(|rest| rest.strip_prefix('=')) {
                    copts.push(value.to_string());
                } else if word == flag && i + 1 < words.len() {
                    copts.push(words[i + 1].to_string());
                    i += 1;
                }
            }
            i += 1;
        }
    }
    copts
}

/// Evaluates `NAME = TERM + TERM ...` of a Starlark file, where each term is
/// a list of string literals, the name of another such list, or
/// `select({...})` of such lists, of which the `//conditions:default` branch
/// counts (the crate's build is no Bazel configuration: no --//:werror, not
/// -c opt).
fn starlark_string_list(text: &str, name: &str) -> Result<Vec<String>, String> {
    let tokens = starlark_tokens(text)?;
    let start = tokens
        .windows(2)
        .position(|w| w[0] == Token::Name(name.to_string()) && w[1] == Token::Punct('='))
        .ok_or_else(|| format!("no assignment to {name}"))?;
    let mut values = Vec::new();
    let mut i = start + 2;
    loop {
        match tokens.get(i) {
            Some(Token::Name(call)) if call == "select" => values.extend(starlark_select_default(&tokens, &mut i, name)?),
            Some(Token::Name(other)) => values.extend(starlark_string_list(text, other)?),
            Some(Token::Punct('[')) => values.extend(starlark_list(&tokens, &mut i, name)?),
            other => return Err(format!("{name}: expected a list or a name, found {other:?}")),
        }
        i += 1;
        if tokens.get(i) != Some(&Token::Punct('+')) {
            return Ok(values);
        }
        i += 1;
    }
}

/// The list literal starting at tokens[*i] (a `[`); leaves *i at its `]`.
fn starlark_list(tokens: &[Token], i: &mut usize, name: &str) -> Result<Vec<String>, String> {
    let mut values = Vec::new();
    loop {
        *i += 1;
        match tokens.get(*i) {
            Some(Token::Str(s)) => values.push(s.clone()),
            Some(Token::Punct(',')) => {}
            Some(Token::Punct(']')) => return Ok(values),
            other => return Err(format!("{name}: unexpected {:?} in a list", other)),
        }
    }
}

/// `select({"label": [...], ..., "//conditions:default": [...]})` starting at
/// tokens[*i] (the name `select`): the default branch; leaves *i at the `)`.
fn starlark_select_default(tokens: &[Token], i: &mut usize, name: &str) -> Result<Vec<String>, String> {
    let expect = |at: usize, c: char| -> Result<(), String> {
        if tokens.get(at) == Some(&Token::Punct(c)) {
            Ok(())
        } else {
            Err(format!("{name}: expected '{c}' in select(), found {:?}", tokens.get(at)))
        }
    };
    expect(*i + 1, '(')?;
    expect(*i + 2, '{')?;
    *i += 3;
    let mut default = None;
    loop {
        match tokens.get(*i) {
            Some(Token::Punct('}')) => break,
            Some(Token::Punct(',')) => *i += 1,
            Some(Token::Str(key)) => {
                let key = key.clone();
                expect(*i + 1, ':')?;
                expect(*i + 2, '[')?;
                *i += 2;
                let list = starlark_list(tokens, i, name)?;
                if key == "//conditions:default" {
                    default = Some(list);
                }
                *i += 1;
            }
            other => return Err(format!("{name}: unexpected {:?} in select()", other)),
        }
    }
    expect(*i + 1, ')')?;
    *i += 1;
    default.ok_or_else(|| format!("{name}: a select() without a //conditions:default branch"))
}

#[derive(Debug, PartialEq)]
enum Token {
    Name(String),
    Str(String),
    Punct(char),
}

fn starlark_tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' {
            let triple = i + 2 < chars.len() && chars[i + 1] == c && chars[i + 2] == c;
            let quote_len = if triple { 3 } else { 1 };
            let closes = |at: usize| (0..quote_len).all(|k| chars.get(at + k) == Some(&c));
            let mut value = String::new();
            i += quote_len;
            while !closes(i) {
                match chars.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('\\') => {
                        value.extend(chars.get(i + 1));
                        i += 2;
                    }
                    Some(&ch) => {
                        value.push(ch);
                        i += 1;
                    }
                }
            }
            i += quote_len;
            tokens.push(Token::Str(value));
        } else if c.is_alphanumeric() || c == '_' {
            let begin = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Name(chars[begin..i].iter().collect()));
        } else {
            if !c.is_whitespace() {
                tokens.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    Ok(tokens)
}

/// Compiles the sources that changed, as many at a time as cargo allows;
/// returns every object. An object is rebuilt when its source or any header
/// of the library is newer.
fn compile(repo: &Path, out_dir: &Path, cxx: &OsString, flags: &[String], sources: &[PathBuf]) -> Vec<PathBuf> {
    let obj_dir = object_dir(out_dir, cxx, flags);
    let newest_header = newest_header(repo);
    let jobs = env::var("NUM_JOBS").ok().and_then(|n| n.parse().ok()).unwrap_or(1usize).max(1);

    let mut objects = Vec::new();
    let mut running: Vec<Compile> = Vec::new();
    for source in sources {
        let relative = source.strip_prefix(repo).unwrap_or(source);
        let object = obj_dir.join(relative).with_extension("o");
        objects.push(object.clone());
        let fresh = modified(&object).map_or(false, |built| {
            modified(source).map_or(false, |m| m <= built) && newest_header.map_or(true, |h| h <= built)
        });
        if fresh {
            continue;
        }
        let parent = object.parent().expect("objects live in <object dir>/<package>");
        if let Err(e) = fs::create_dir_all(parent) {
            fail(&format!("cannot create {}: {e}", parent.display()));
        }
        if running.len() == jobs {
            running.remove(0).finish(cxx);
        }
        // Written beside and renamed into place: another cargo may be
        // reading the object directory.
        let partial = object.with_extension(format!("o.{}.partial", std::process::id()));
        let mut command = Command::new(cxx);
        command.args(flags).arg("-c").arg(source).arg("-o").arg(&partial);
        match command.spawn() {
            Ok(child) => running.push(Compile { child, source: source.clone(), partial, object }),
            Err(e) => fail(&format!(
                "cannot run the C++ compiler {cxx:?}: {e}; install g++ (apt-get install g++) or set CXX"
            )),
        }
    }
    for compile in running {
        compile.finish(cxx);
    }
    objects
}

/// Where the objects are kept: beside the build directories of this target
/// directory and profile, in a folder named after the compiler and flags.
/// Not in OUT_DIR, which differs between workspaces sharing a target
/// directory (cargo hashes a path dependency's location relative to the
/// workspace), so that this crate's tests and a program depending on it
/// compile the C++ once.
fn object_dir(out_dir: &Path, cxx: &OsString, flags: &[String]) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    (cxx, flags).hash(&mut hasher);
    // OUT_DIR is <target>/<profile>/build/nitroheap-<hash>/out.
    match out_dir.parent().and_then(Path::parent) {
        Some(build_dir) if build_dir.file_name().map_or(false, |name| name == "build") => {
            build_dir.join(format!("nitroheap-objects-{:016x}", hasher.finish()))
        }
        _ => out_dir.join("obj"),
    }
}

struct Compile {
    child: Child,
    source: PathBuf,
    partial: PathBuf,
    object: PathBuf,
}

impl Compile {
    fn finish(mut self, cxx: &OsString) {
        match self.child.wait() {
            Ok(status) if status.success() => {}
            Ok(status) => fail(&format!("{cxx:?} failed to compile {} ({status})", self.source.display())),
            Err(e) => fail(&format!("waiting for {cxx:?} on {}: {e}", self.source.display())),
        }
        if let Err(e) = fs::rename(&self.partial, &self.object) {
            fail(&format!("cannot rename {} to {}: {e}", self.partial.display(), self.object.display()));
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of the library's headers.
fn newest_header(repo: &Path) -> Option<SystemTime> {
    let mut dirs: Vec<PathBuf> = LIBRARY_DIRS.iter().map(|d| repo.join(d)).collect();
    dirs.push(repo.join("abi").join("include").join("nitroheap"));
    dirs.iter()
        .filter_map(|dir| fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|entry| entry.path().extension().map_or(false, |ext| ext == "h"))
        .filter_map(|entry| modified(&entry.path()))
        .max()
}

fn run(mut command: Command, what: &str) {
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!("cannot {what}: {command:?} exited with {status}")),
        Err(e) => fail(&format!("cannot {what}: cannot run {command:?}: {e}")),
    }
}
