"""Every module of the project imports on its own, first: no import cycle hides behind an import order."""

import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "controller", "jobs", "middleware", "model", "routes", "services", "sockets", "utils")

FIRST_IMPORT = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in {%s}]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as error:
        failed.append(f"{name}: {error}")
print("\\n".join(failed))
"""


def test_each_module_imports_first():
    modules = [
        f"{package}.{info.name}"
        for package in PACKAGES
        for info in pkgutil.iter_modules([str(ROOT / package)])
        if not info.name.startswith("__")
    ]
    assert "services.rooms" in modules and "services.pins" in modules
    script = FIRST_IMPORT % ", ".join(repr(package) for package in PACKAGES)
    done = subprocess.run([sys.executable, "-c", script, *modules], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout
