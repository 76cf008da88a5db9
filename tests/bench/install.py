"""A throw-away installation of this checkout, shaped like what ``pip install .`` makes.

Users run the console scripts of an installed package: a tiny wrapper whose ``#!`` line
names the interpreter, importing modules whose bytecode pip compiled at install time.
Measuring ``python -m check_smtp_verbs`` from a checkout instead would add runpy and,
where ``PYTHONDONTWRITEBYTECODE`` is set (as on the project's machines), compiling every
module on every run, none of which a user pays.  We must not ``pip install`` into the
shared interpreter, so the package is copied into a temp directory, compiled there, and
put first on ``PYTHONPATH`` (ahead of any editable install) for the floor and the
plugin alike; the wrappers are the text pip writes for ``console_scripts``.
"""

from __future__ import annotations

import compileall
import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "check_smtp_verbs"

_WRAPPER = """\
#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {function}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({function}())
"""


def console_scripts() -> dict[str, str]:
    """name -> "module:function", from setup.cfg, so a new console script is benched too."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    raw = config.get("options.entry_points", "console_scripts", fallback="")
    scripts = {}
    for line in raw.strip().splitlines():
        name, _, target = line.partition("=")
        if target.strip():
            scripts[name.strip()] = target.strip()
    return scripts


class Installation:
    """The checkout installed under ``prefix``: ``bin/<script>`` and ``lib/<package>``."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.python = sys.executable  # the real interpreter, not a pyenv shim script
        lib = self.lib = prefix / "lib"
        bin_dir = prefix / "bin"
        bin_dir.mkdir(parents=True)
        shutil.copytree(ROOT / PACKAGE, lib / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
        if not compileall.compile_dir(str(lib / PACKAGE), quiet=1):
            raise RuntimeError("compiling the package failed")
        self.scripts: dict[str, Path] = {}
        for name, target in console_scripts().items():
            module, _, function = target.partition(":")
            path = bin_dir / name
            path.write_text(_WRAPPER.format(python=self.python, module=module, function=function))
            path.chmod(0o755)
            self.scripts[name] = path
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(lib), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        self._check_imports_the_copy(lib)
        self.site_packages: list[str] = json.loads(
            self.run_text(
                [self.python, "-c", "import json, site; print(json.dumps(site.getsitepackages()))"]
            )
        )

    def script(self, name: str) -> str:
        if name not in self.scripts:
            raise LookupError(f"no console script {name!r} in setup.cfg")
        return str(self.scripts[name])

    def run_text(self, argv: list[str]) -> str:
        """stdout and stderr of one run, for finding out what the installed code can do."""
        done = subprocess.run(
            argv, env=self.env, cwd=self.prefix, capture_output=True, text=True, timeout=60
        )
        return done.stdout + done.stderr

    def _check_imports_the_copy(self, lib: Path) -> None:
        """Fail loudly if an editable install would shadow the copy we measure."""
        found = subprocess.run(
            [self.python, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            cwd=self.prefix,
        ).stdout.strip()
        if not found.startswith(str(lib)):
            raise RuntimeError(f"{PACKAGE} is imported from {found}, not from the copy in {lib}")
