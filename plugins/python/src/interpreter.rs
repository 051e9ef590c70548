//! Starting the embedded CPython: make its symbols visible to C extensions,
//! initialise it, put the app's directories and virtual environment on
//! `sys.path`, install the embedded `spikard` package and the native module,
//! and import the user's `App`.

use std::ffi::CStr;
use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::settings::Settings;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Re-opens libpython with `RTLD_GLOBAL`.
///
/// The host opens plugins with `RTLD_LOCAL`, so libpython's symbols are not
/// visible to the C extension modules CPython later `dlopen`s (`_ctypes`,
/// msgspec, uvloop …), which then fail with `undefined symbol: PyTuple_Type`.
/// Promoting the already-loaded library (found through `dladdr` on one of
/// its functions) to global scope fixes that without loading anything new.
/// Returns the library's path, for the log.
pub fn make_libpython_global() -> Option<String> {
    // SAFETY: dladdr only reads loader tables; dlopen with RTLD_NOLOAD only
    // changes the flags of a library that is already loaded.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let symbol = pyo3::ffi::Py_Initialize as *const libc::c_void;
        if libc::dladdr(symbol, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let handle = libc::dlopen(
            info.dli_fname,
            libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD,
        );
        // The extra reference keeps libpython loaded for good, which it is anyway.
        let _ = handle;
        Some(
            CStr::from_ptr(info.dli_fname)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// Puts the settings' directories first on `sys.path` and the virtual
/// environment's site-packages after them.
pub fn configure_paths(py: Python<'_>, settings: &Settings) -> Result<(), String> {
    let sys = py.import("sys").map_err(|e| e.to_string())?;
    let path = sys
        .getattr("path")
        .and_then(|p| p.cast_into::<PyList>().map_err(Into::into))
        .map_err(|e| e.to_string())?;
    for (i, dir) in settings.python_path.iter().enumerate() {
        let dir = dir.to_string_lossy();
        path.insert(i, dir.as_ref()).map_err(|e| e.to_string())?;
    }
    if let Some(venv) = &settings.venv {
        let site_packages = site_packages(py, venv)?;
        py.import("site")
            .and_then(|site| site.call_method1("addsitedir", (site_packages,)))
            .map_err(|e| format!("settings.venv: adding its site-packages failed: {e}"))?;
    }
    Ok(())
}

/// `<venv>/lib/pythonX.Y/site-packages` for the running interpreter.
fn site_packages(py: Python<'_>, venv: &Path) -> Result<String, String> {
    let version = py.version_info();
    let dir = venv
        .join("lib")
        .join(format!("python{}.{}", version.major, version.minor))
        .join("site-packages");
    if dir.is_dir() {
        Ok(dir.to_string_lossy().into_owned())
    } else {
        Err(format!(
            "settings.venv: {} has no {}; it is not a Python {}.{} virtual environment (create one with python{}.{} -m venv)",
            venv.display(),
            dir.strip_prefix(venv).unwrap_or(&dir).display(),
            version.major,
            version.minor,
            version.major,
            version.minor
        ))
    }
}

const FINDER: &CStr = c"
import importlib.abc, importlib.util, sys

class EmbeddedSpikard(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    '''Serves the spikard package compiled into the plugin, ahead of any
    installed copy, so the Python half always matches the Rust half.'''

    def __init__(self, modules):
        self.modules = {name: (is_pkg, path, source) for name, is_pkg, path, source in modules}

    def find_spec(self, name, path=None, target=None):
        entry = self.modules.get(name)
        if entry is None:
            return None
        return importlib.util.spec_from_loader(name, self, origin=entry[1], is_package=entry[0])

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        is_pkg, path, source = self.modules[module.__name__]
        module.__file__ = path
        if is_pkg:
            module.__path__ = []
        exec(compile(source, path, 'exec'), module.__dict__)

sys.meta_path.insert(0, EmbeddedSpikard(MODULES))
";

/// Installs the embedded `spikard` package and `spikard._native`.
pub fn install_package(py: Python<'_>, native: Bound<'_, PyModule>) -> PyResult<()> {
    let globals = PyDict::new(py);
    globals.set_item("MODULES", embedded::MODULES.to_vec())?;
    py.run(FINDER, Some(&globals), None)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("spikard._native", native)?;
    Ok(())
}

/// What the interpreter is, for the start-up log.
pub fn describe(py: Python<'_>) -> String {
    let sys = match py.import("sys") {
        Ok(sys) => sys,
        Err(e) => return e.to_string(),
    };
    let get = |name: &str| sys.getattr(name).map(|v| v.to_string()).unwrap_or_default();
    format!(
        "python {} (prefix {})",
        get("version").split_whitespace().next().unwrap_or(""),
        get("prefix")
    )
}

/// Imports `module:attribute` and checks it is a `spikard.App`. Errors name
/// `settings.app` and say how to fix the most common mistakes.
pub fn import_app<'py>(py: Python<'py>, settings: &Settings) -> Result<Bound<'py, PyAny>, String> {
    let app_text = format!("{}:{}", settings.module, settings.attribute);
    let module = match py.import(settings.module.as_str()) {
        Ok(module) => module,
        Err(err) => return Err(import_error(py, &err, settings, &app_text)),
    };
    let app = module.getattr(settings.attribute.as_str()).map_err(|_| {
        format!(
            "settings.app = {app_text:?}: module `{}` has no attribute `{}`; name the variable holding your App (e.g. app = App())",
            settings.module, settings.attribute
        )
    })?;
    let app_class = py
        .import("spikard")
        .and_then(|s| s.getattr("App"))
        .map_err(|e| format!("the embedded spikard package failed to import: {e}"))?;
    if !app.is_instance(&app_class).unwrap_or(false) {
        let kind = app
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        return Err(format!(
            "settings.app = {app_text:?} is a `{kind}`, not a spikard.App; point it at the object created with `app = App()`"
        ));
    }
    Ok(app)
}

fn import_error(py: Python<'_>, err: &PyErr, settings: &Settings, app_text: &str) -> String {
    let value = err.value(py);
    if err.is_instance_of::<pyo3::exceptions::PyModuleNotFoundError>(py) {
        let missing: String = value
            .getattr("name")
            .and_then(|n| n.extract())
            .unwrap_or_default();
        let top = settings.module.split('.').next().unwrap_or_default();
        if settings.module == missing
            || settings.module.starts_with(&format!("{missing}."))
            || missing == top
        {
            let searched: Vec<String> = settings
                .python_path
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return format!(
                "settings.app = {app_text:?}: no module named `{missing}` in {}; put the app's directory in settings.python_path (relative to the config file)",
                searched.join(", ")
            );
        }
        return format!(
            "settings.app = {app_text:?}: importing `{}` failed: no module named `{missing}`; install it in the virtual environment (settings.venv or VIRTUAL_ENV)",
            settings.module
        );
    }
    if err.is_instance_of::<pyo3::exceptions::PySyntaxError>(py) {
        let field = |name: &str| {
            value
                .getattr(name)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        return format!(
            "settings.app = {app_text:?}: syntax error in {} line {}: {}; fix the app's source",
            field("filename"),
            field("lineno"),
            field("msg")
        );
    }
    let traceback = err
        .traceback(py)
        .and_then(|tb| tb.format().ok())
        .unwrap_or_default();
    format!(
        "settings.app = {app_text:?}: importing `{}` raised {err}; fix the app (traceback: {})",
        settings.module,
        traceback.trim().replace('\n', " | ")
    )
}
