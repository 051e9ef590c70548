//! Links the plugin to the interpreter it is built against, for good, and
//! embeds the `spikard` Python package into the library.
//!
//! - An rpath to that interpreter's `LIBDIR`: without it the dynamic loader
//!   may bind a same-soname `libpython` from elsewhere (e.g. Debian's) at run
//!   time — a different interpreter and standard library, silently.
//! - `embedded.rs`: every `.py` file of `python/spikard`, so the running
//!   plugin always uses the Python half that matches its Rust half, with no
//!   `pip install` or `PYTHONPATH` needed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn python_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "__pycache__") {
                python_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "py") {
            out.push(path);
        }
    }
}

fn main() {
    let config = pyo3_build_config::get();
    if let Some(lib_dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg-cdylib=-Wl,-rpath,{lib_dir}");
    }

    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("python");
    let package = root.join("spikard");
    println!("cargo:rerun-if-changed={}", package.display());
    let mut files = Vec::new();
    python_files(&package, &mut files);
    let mut code = String::from(
        "/// `(module name, is package, source path, source)` of the embedded `spikard` package.\npub static MODULES: &[(&str, bool, &str, &str)] = &[\n",
    );
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let relative = file.strip_prefix(&root).unwrap().with_extension("");
        let mut parts: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let is_package = parts.last().is_some_and(|p| p == "__init__");
        if is_package {
            parts.pop();
        }
        let path = file.display().to_string();
        writeln!(
            code,
            "    ({:?}, {is_package}, {path:?}, include_str!({path:?})),",
            parts.join(".")
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("embedded.rs");
    std::fs::write(out, code).unwrap();
}
