//! Starting the embedded CPython: make its symbols visible to C extensions,
//! initialise it (as the virtual environment's own `python` would start),
//! put the app's directories on `sys.path`, install the embedded `spikard`
//! package and the native module, and import the user's `App`.

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
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

/// Starts CPython. With a virtual environment (`settings.venv`, a directory
/// with a `pyvenv.cfg`) it starts as `<venv>/bin/python` would: the
/// interpreter's `executable` is that path, so CPython's start-up finds
/// `pyvenv.cfg` beside it, takes the standard library from its `home`, and
/// `site` makes the venv `sys.prefix`, puts its site-packages on `sys.path`
/// and honours `include-system-site-packages` (`false`: the base
/// installation's site-packages are absent and their `.pth` files never run;
/// `true`: they come after the venv's). Without one, the interpreter starts
/// as pyo3 starts it.
///
/// Everything else is what pyo3's `Py_InitializeEx(0)` does: no signal
/// handlers (the host owns signals), no C stdio changes, no `argv` parsing,
/// no C-locale coercion or UTF-8 mode (which would change the process's
/// locale under the host's threads).
pub fn initialize(settings: &Settings) -> Result<(), String> {
    let venv = settings
        .venv
        .as_deref()
        .filter(|venv| venv.join(VENV_CONFIG).is_file());
    if let Some(venv) = venv {
        check_venv_version(venv)?;
        // SAFETY: called once, before anything else touches CPython (the
        // caller checked it is not running).
        unsafe { initialize_as(&venv.join("bin").join("python"))? };
    }
    // Marks pyo3's start-up as done (it is a no-op once CPython runs).
    Python::initialize();
    Ok(())
}

/// The file that makes a directory a virtual environment (PEP 405).
const VENV_CONFIG: &str = "pyvenv.cfg";

/// Refuses a venv made by another Python `major.minor` than the embedded
/// one: its `home` would give CPython a foreign standard library.
fn check_venv_version(venv: &Path) -> Result<(), String> {
    let config = std::fs::read_to_string(venv.join(VENV_CONFIG)).map_err(|e| {
        format!(
            "settings.venv: cannot read {}: {e}",
            venv.join(VENV_CONFIG).display()
        )
    })?;
    let made_by = config.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_owned())
    });
    // SAFETY: a static string, readable before initialisation.
    let embedded = unsafe { CStr::from_ptr(pyo3::ffi::Py_GetVersion()) }.to_string_lossy();
    let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    let embedded = minor(embedded.split_whitespace().next().unwrap_or_default());
    match made_by {
        Some(version) if minor(&version) != embedded => Err(format!(
            "settings.venv: {} was made by Python {version}, but the plugin embeds Python {embedded}; create the virtual environment with python{embedded} -m venv",
            venv.display()
        )),
        _ => Ok(()),
    }
}

/// `Py_InitializeFromConfig` with `executable` set, then the GIL released
/// (as pyo3 leaves it).
///
/// # Safety
/// Once per process, before CPython is initialised.
unsafe fn initialize_as(executable: &Path) -> Result<(), String> {
    use pyo3::ffi;
    let executable = CString::new(executable.as_os_str().as_bytes())
        .map_err(|_| "settings.venv: the path contains a NUL byte".to_owned())?;
    // SAFETY: the pre-configuration is initialised by CPython before use.
    unsafe {
        let mut pre = MaybeUninit::<ffi::PyPreConfig>::uninit();
        ffi::PyPreConfig_InitPythonConfig(pre.as_mut_ptr());
        let mut pre = pre.assume_init();
        // The compatible ("embedded") defaults, as `Py_InitializeEx` has them.
        pre.parse_argv = 0;
        pre.coerce_c_locale = 0;
        pre.coerce_c_locale_warn = 0;
        pre.utf8_mode = 0;
        status(ffi::Py_PreInitialize(&pre), "pre-initialising Python")?;
    }
    let mut config = MaybeUninit::<ffi::PyConfig>::uninit();
    // SAFETY: `config` is initialised by `PyConfig_InitPythonConfig` and
    // cleared on every path after it.
    unsafe {
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let config = config.as_mut_ptr();
        (*config).install_signal_handlers = 0;
        (*config).configure_c_stdio = 0;
        (*config).parse_argv = 0;
        let started = status(
            ffi::PyConfig_SetBytesString(
                config,
                std::ptr::addr_of_mut!((*config).executable),
                executable.as_ptr(),
            ),
            "setting the interpreter's executable",
        )
        .and_then(|()| {
            status(
                ffi::Py_InitializeFromConfig(config),
                "starting Python for settings.venv",
            )
        });
        ffi::PyConfig_Clear(config);
        started?;
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

/// A `PyStatus` as a result; its message names `what` failed.
fn status(status: pyo3::ffi::PyStatus, what: &str) -> Result<(), String> {
    // SAFETY: reads a status CPython returned; `err_msg` is a static string or null.
    unsafe {
        if pyo3::ffi::PyStatus_Exception(status) == 0 {
            return Ok(());
        }
        let message = if status.err_msg.is_null() {
            format!("exit code {}", status.exitcode)
        } else {
            CStr::from_ptr(status.err_msg)
                .to_string_lossy()
                .into_owned()
        };
        Err(format!("{what} failed: {message}"))
    }
}

/// Puts the settings' directories first on `sys.path`, and the site-packages
/// of a `venv` that is not a virtual environment (no `pyvenv.cfg`, so
/// [`initialize`] could not start from it) after them.
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
        if venv.join(VENV_CONFIG).is_file() {
            return Ok(()); // `site` put it on sys.path at start-up
        }
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
