"""Imports the extension probe built for the running interpreter, as a user's
`import` would. Standard library only, and as little of it as possible: the
python-* hosts run pydriver.py, which imports this, once per run, and every
module imported here is start-up time added to each of those runs.

Run by its path (pydriver.py, kernel_driver.py under the interpreter
measured) or imported from the package (the magics); the kernels get its
source as a cell (kernel_driver.setup_cell), so it holds one function."""
import os
import sys


def load_pyext(directory, name="sigprobe_pyext"):
    """The extension probe's module `name` (sigprobe_pyext, sigprobe_pyext_import)
    built for this interpreter in directory, imported through a finder for
    that directory on sys.meta_path, not a sys.path entry: after this,
    `import sigprobe_pyext_import` works as a user would write it (the
    extension's own run("c-handler-import") does just that). ImportError
    when directory has no build for this interpreter."""
    # importlib.machinery only: importlib.util and import_module would bring
    # contextlib, functools and collections along (tens of ms per run).
    from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader, ModuleSpec

    class PyextFinder:
        modules = ("sigprobe_pyext", "sigprobe_pyext_import")
        # A folder holding a copy of sigprobe_pyext_import to import instead
        # of where's, so that its init runs again (kernel_driver.FRESH_IMPORT).
        import_where = None

        def __init__(self, where):
            self.where = where

        def find_spec(self, fullname, path=None, target=None):
            if fullname not in self.modules:
                return None
            where = self.import_where if fullname == "sigprobe_pyext_import" and self.import_where else self.where
            for suffix in EXTENSION_SUFFIXES:
                candidate = os.path.join(where, fullname + suffix)
                if os.path.isfile(candidate):
                    spec = ModuleSpec(fullname, ExtensionFileLoader(fullname, candidate), origin=candidate)
                    spec.has_location = True  # as spec_from_file_location: __file__ is set
                    return spec
            return None

    if not any(getattr(f, "modules", None) == PyextFinder.modules and f.where == directory for f in sys.meta_path):
        sys.meta_path.append(PyextFinder(directory))
    try:
        __import__(name)
        return sys.modules[name]
    except ModuleNotFoundError:
        raise ImportError(f"no {name} built for this interpreter ({sys.executable}) in {directory}") from None
