"""nginx as a real file server, for the download tests and the download benchmark.

:class:`NginxServer` runs the distribution's ``nginx`` binary in the foreground
(one process, no master) with a configuration written to a temporary folder:
every log, pid and temporary path lives there, nothing under ``/etc`` or
``/var`` is read or written, and it listens on two free loopback ports that
serve the same root folder:

- ``origin``: a plain static file server, with byte ranges and a strong ``ETag``
  (nginx's defaults);
- ``no_ranges_origin``: the same files with ``max_ranges 0``, so nginx ignores
  ``Range`` and answers ``200`` with the whole file.

Files are published at a URL path with :meth:`NginxServer.publish` (a symlink in
the root), e.g. at ``videos-content/<task id>``, the path of FastRouter's hosted
copy that the simulator writes into a result when its ``asset_origin`` is the
nginx origin. The access log is one JSON object per request, so tests can check
what nginx itself received (the ``Range`` and ``Authorization`` headers among it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final, Self

from ._servers import ServerProcess, accepts, free_ports, wait_started

__all__ = ["NGINX_MISSING", "NginxServer", "find_nginx"]

NGINX_MISSING: Final = "nginx is not installed: apt-get install nginx (Debian/Ubuntu); .ci/run installs it"


_LOG_FORMAT: Final = (
    '{"port":$server_port,"method":"$request_method","uri":"$request_uri","status":$status,'
    '"body_bytes_sent":$body_bytes_sent,"range":"$http_range","if_range":"$http_if_range",'
    '"authorization":"$http_authorization"}'
)

_CONFIG: Final = """\
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;

events {{
    worker_connections 256;
}}

http {{
    log_format probe escape=json '{log_format}';
    access_log {work}/access.log probe;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;

    sendfile on;
    tcp_nopush on;
    default_type video/mp4;
    server_tokens off;

    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}

    server {{
        listen 127.0.0.1:{no_ranges_port};
        root {root};
        max_ranges 0;
    }}
}}
"""


def find_nginx() -> str | None:
    """The nginx binary: on PATH, or where Debian installs it (/usr/sbin is not on every user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def nginx_version(binary: str) -> str:
    """``nginx/1.22.1``, as ``nginx -v`` prints it (on stderr)."""
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


class NginxServer(ServerProcess):
    """nginx serving ``workdir/root`` on two loopback ports (see the module docstring)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = Path(workdir)
        self.root = self.workdir / "root"
        self.port = 0
        self.no_ranges_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<NginxServer {self.origin if self._process else 'stopped'}>"

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``: ranges allowed."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def no_ranges_origin(self) -> str:
        """``http://127.0.0.1:PORT``: ``max_ranges 0``, every answer is a 200 with the whole file."""
        return f"http://127.0.0.1:{self.no_ranges_port}"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    def start(self, attempts: int = 5) -> Self:
        """Write the configuration, start nginx and wait until both ports accept connections."""
        if self._process is not None:
            raise RuntimeError("this nginx is already running")
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            self.port, self.no_ranges_port = free_ports(2)
            config = self.workdir / "nginx.conf"
            config.write_text(
                _CONFIG.format(
                    work=self.workdir,
                    root=self.root,
                    port=self.port,
                    no_ranges_port=self.no_ranges_port,
                    log_format=_LOG_FORMAT,
                )
            )
            if self._launch(config):
                return self
            # Another process took a port between our probe and nginx's bind: pick new ones.
        raise RuntimeError(f"nginx did not start after {attempts} attempts: {self._error_tail()}")

    def _launch(self, config: Path) -> bool:
        # -e: the error log before the configuration is read (the default is under /var/log).
        with open(self.workdir / "stderr.log", "ab") as stderr:
            process = subprocess.Popen(
                [self.binary, "-p", str(self.workdir), "-c", str(config), "-e", str(self.error_log)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        started = wait_started(
            process,
            name="nginx",
            ready=lambda: accepts(self.port) and accepts(self.no_ranges_port),
            log_tail=self._error_tail,
            waiting_for="accept connections",
        )
        if started:
            self._process = process
        return started

    def publish(self, url_path: str, source: Path) -> str:
        """Serve ``source`` at ``/<url_path>`` on both ports (a symlink in the root); returns the path."""
        link = self.root / url_path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(Path(source).resolve())
        return "/" + url_path.lstrip("/")

    def requests(self) -> list[dict[str, Any]]:
        """Every request nginx has logged so far (it logs each one as it completes), oldest first."""
        if not self.access_log.exists():
            return []
        return [json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()]

    def _error_tail(self) -> str:
        texts = [p.read_text(errors="replace") for p in (self.error_log, self.workdir / "stderr.log") if p.exists()]
        return " | ".join(t.strip()[-2000:] for t in texts if t.strip()) or "(nothing logged)"
