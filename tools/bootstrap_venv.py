"""Create ``.venv`` with a working pip, using nothing but the standard library.

``python3 -m venv`` needs ``ensurepip``, which some system Pythons (Debian's
``python3`` without ``python3-venv``) leave out. In that case the environment is
created without pip, and pip is installed from its own wheel, fetched from PyPI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import venv
from pathlib import Path


def main(target: str = ".venv") -> int:
    env_dir = Path(target)
    python = env_dir / "bin" / "python"
    if python.exists() and subprocess.call([python, "-m", "pip", "--version"], stdout=subprocess.DEVNULL) == 0:
        return 0
    try:
        venv.create(env_dir, with_pip=True, clear=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"venv with pip failed ({exc}); installing pip from its wheel instead", file=sys.stderr)
    else:
        return 0
    venv.create(env_dir, with_pip=False, clear=True)
    index = "https://pypi.org/pypi/pip/json"
    with urllib.request.urlopen(index, timeout=60) as answer:
        release = json.load(answer)
    wheel = next(f for f in release["urls"] if f["filename"].endswith("-py3-none-any.whl"))
    wheel_url = urllib.parse.urljoin(index, wheel["url"])  # mirrors may answer with relative URLs
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / wheel["filename"]
        with urllib.request.urlopen(wheel_url, timeout=120) as answer:
            path.write_bytes(answer.read())
        # A pip wheel can run itself: python pip.whl/pip install pip.whl
        subprocess.check_call([python, str(path / "pip"), "install", "--no-index", str(path)])
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
