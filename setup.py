"""The wheel carries what the tool reads at run time besides its code: the firmware sources and
the board profiles, copied into the package as loraspot/_data (resources.py finds them there;
an editable install reads them from the source tree instead)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = ("firmware", "boards")


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in DATA:
            shutil.copytree(ROOT / name, Path(self.build_lib) / "loraspot" / "_data" / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
