"""DPDK's ipsec-secgw (librte_ipsec, software crypto) as a process on a topology.

Theory of operation: ``Secgw(topology, binary, outbound=..., inbound=...)`` is one
ipsec-secgw in end a of a ``harness.net`` topology, holding one outbound and one inbound
tunnel-mode SA toward end b (and, with ``fence=``, the inbound SA of ``fence.Fence``).
Its SAs are static (read once from its file), so a new session -- new SPIs and keys,
another window, ESN on or off -- is ``restart(...)``: stop, write a new file, start. ``start()``:

1. writes the file (``config.tunnel_config``) into ``<topology folder>/secgw/``;
2. starts the binary through ``topology.spawn`` (so it is our child, in its own process
   group, killed by PID on ``topology.close()``), argv from ``config.launch_argv``: one
   lcore (``-l core``; on a 2-core box core 1, leaving core 0 to Python), ``--no-huge``
   with 512 MB of anonymous memory (below ~320 it exits silently), ``--no-pci``, a
   ``--file-prefix`` new for every start (``<topology prefix>-sg<n>``), two net_tap ports
   and the crypto vdevs the SAs' AEADs need. It runs under ``sh -c 'ulimit -c 0; exec
   stdbuf -oL ...'`` (both exec, so the PID is secgw's): no core dumps (secgw answers a
   bad file with rte_panic, an abort), and its printf lines (stdout, otherwise
   block-buffered into the log) stay in order with its RTE_LOG lines (stderr);
3. waits for its own "ready" words: one `` -- lcoreid=C portid=P rxqueueid=0`` line per
   port, printed just before its poll loop (about 0.25 s after the spawn here), and
   checks that port 0 is the ESP tap (its MAC); a parse error (``FILE:LINE: error: ...``)
   becomes ``BadSecgwConfig``, any other early exit or a timeout ``SecgwStartFailed``;
4. wires the ESP port to the wire (below), then reads DPDK's version from its telemetry.

Bridging, and why this way: the ESP tap (``esp_ifname``, DPDK port 0) carries end a's MAC
(``TopologyConfig.a_mac``, the MAC end b's permanent neighbour entry holds for
192.0.2.10), and two tc ``mirred`` redirects join it to ``eth0`` (the veth toward the
relay): everything arriving on ``eth0`` is sent out of the tap into DPDK, everything DPDK
sends (arriving on the tap's kernel side) is sent out of ``eth0``. It is a wire: the
kernel of namespace a never sees a frame of the tunnel (so it answers no ESP with ICMP
protocol-unreachable; it has no ESP here) and no MAC is learnt. A Linux bridge would
work less well: ``eth0`` already owns a_mac, so a bridge would keep frames for a_mac as
its own instead of forwarding them to the tap (both would need new MACs). Only ``u32``
and ``mirred`` are needed (this kernel has no ``matchall`` or ``flower``). 192.0.2.10
stays on ``eth0``; nothing in namespace a uses it while the secgw runs. ``stop()``
removes the redirect on ``eth0`` (the tap's goes with the tap).

The plaintext tap (``plain_ifname``, DPDK port 1, MAC ``plain_mac``) is espspec's side:
an AF_PACKET socket on it (``plain_socket()``) writes inner packets to the secgw
(``plain_frame(packet)``) and reads what it decrypted. Decrypted frames are addressed to
``plain_peer_mac``, not the tap's own MAC, so the kernel drops them as
PACKET_OTHERHOST and never routes or answers them. The tap is made anew by every start:
open the socket after ``start()``.

``stop()`` sends SIGTERM to the process group (secgw handles it: closes its ports and
exits 0 in ~70 ms), SIGKILL after a grace period, reaps it, removes the redirect and the
DPDK runtime folder of that start's file prefix (secgw leaves it behind). It is
idempotent. The rig puts itself on ``topology.relays``, the list ``Topology.close()``
closes first, so a forgotten ``stop()`` still runs before the namespaces go.
``stats()`` asks DPDK's telemetry socket in that runtime folder for the per-SA counters
(``/ipsec/sa/stats``: packets, bytes, errors -- errors stay 0 for replay and ICV drops)
and the ports' counters. It busy-polls its core at ~100 % while it runs.

Observed through this rig (for the suites, not enforced here): a received sequence number
is recorded in the replay bitmap only when ``seq % 64 < 32`` (librte_ipsec computes the
bit into a 32-bit variable), so duplicates of the others are delivered, with or without
ESN. ``-w N`` accepts H-N (N+1 values), except for N a power of two >= 128: the bitmap is
then exactly N bits, H-N shares H's bit and is refused whenever H was recorded. With
ESN, ``-w 0`` becomes 64.

``build_binary()`` runs scripts/build-ipsec-secgw (which builds once, outside the
checkout) and answers the binary's path. What this module does not do: make the topology
or relay, or judge packets. UDP encapsulation does not exist for software SAs
in ipsec-secgw: ESP is IP protocol 50 only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time

from ..net.frames import ip_frame, ip_packet, mac_bytes
from ..net import nsenter
from ..net.errors import CommandFailed
from ..net.procs import run
from .config import (ESP_PORT, PLAIN_PORT, BadSecgwConfig, BinaryMissing, Launch,
                     SecgwDied, SecgwError, SecgwSa, SecgwStartFailed, Tunnel, check_esn,
                     crypto_vdevs, launch_argv, tunnel_config)

__all__ = ["BadSecgwConfig", "BinaryMissing", "Secgw", "SecgwDied", "SecgwError", "SecgwSa",
           "SecgwStartFailed", "build_binary", "dpdk_version", "ip_packet"]

ETH_P_ALL = 0x0003
PROTO_ESP = 50
STOP_GRACE = 2.0                 # seconds between SIGTERM and SIGKILL
RUNTIME_ROOT = "/var/run/dpdk"   # DPDK's runtime folder for root (eal_filesystem.h)
TELEMETRY_SOCKET = "dpdk_telemetry.v2"
PLAIN_PEER_MAC = "02:e5:50:00:03:0a"
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
_PARSE_ERROR = re.compile(r":\d+: error: (.*)")
_PORT_MAC = re.compile(r"Configuring device port (\d+):\s*\nAddress: ([0-9A-Fa-f:]{17})")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


BUILD_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                            "scripts", "build-ipsec-secgw")


def build_binary(timeout: float = 600) -> str:
    """The ipsec-secgw binary's path, built by scripts/build-ipsec-secgw if need be (once:
    later calls find it up to date); BinaryMissing with the script's one line if not."""
    script = os.path.normpath(BUILD_SCRIPT)
    if not os.path.exists(script):
        raise BinaryMissing(f"{script} is missing (the DPDK rig runs from a checkout)")
    try:
        r = subprocess.run([script], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BinaryMissing(f"{script} did not finish within {timeout:g} s") from None
    if r.returncode != 0:
        raise BinaryMissing((r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1])
    return r.stdout.strip()


def dpdk_version() -> str:
    try:
        out = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


# --- frames the rig's user needs ---------------------------------------------------------


def ether_frame(dst_mac: str, src_mac: str, packet: bytes) -> bytes:
    etype = 0x86DD if packet[:1] and packet[0] >> 4 == 6 else 0x0800
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", etype) + packet


# --- the process -------------------------------------------------------------------------


class Secgw:
    """One ipsec-secgw in end ``side`` (a) of ``topology``; see the module's docstring."""

    def __init__(self, topology, binary: str, *, core: int = 1, window: int = 64,
                 esn: bool = False, outbound: SecgwSa, inbound: SecgwSa,
                 fence: SecgwSa | None = None,
                 inner_local: str = "203.0.113.1", inner_peer: str = "203.0.113.2",
                 side: str = "a", memory_mb: int = 512,
                 esp_ifname: str = "sg-esp", plain_ifname: str = "sg-plain",
                 plain_mac: str = "02:e5:50:00:02:0a",
                 extra_eal: tuple[str, ...] = ()) -> None:
        self.topology, self.binary, self.side = topology, binary, side
        self.end = topology.ends[side]
        self.peer = topology.ends["b" if side == "a" else "a"]
        self.esp_ifname, self.plain_ifname = esp_ifname, plain_ifname
        self.esp_mac, self.plain_mac = self.end.mac, plain_mac
        self.plain_peer_mac = PLAIN_PEER_MAC
        self.tunnel = Tunnel(outbound=outbound, inbound=inbound, fence=fence,
                             local_outer=self.end.address, peer_outer=self.peer.address,
                             inner_local=inner_local, inner_peer=inner_peer,
                             peer_mac=self.peer.mac, plain_peer_mac=self.plain_peer_mac)
        self._launch = dict(binary=binary, core=core, window=window, esn=esn,
                            memory_mb=memory_mb, esp_tap=esp_ifname, plain_tap=plain_ifname,
                            esp_mac=self.esp_mac, plain_mac=plain_mac,
                            extra_eal=tuple(extra_eal))
        self._launch_for(self.tunnel, self._launch)       # checked now
        self.version = dpdk_version()
        self.starts = 0
        self.start_seconds: float | None = None    # spawn to wired, of the last start
        self.file_prefix: str | None = None
        self.runtime_dir: str | None = None
        self.log_path: str | None = None
        self.config_path: str | None = None
        self._child = None
        self._wired = False

    # --- what it runs with -------------------------------------------------------------

    @property
    def outbound(self) -> SecgwSa:
        return self.tunnel.outbound

    @property
    def inbound(self) -> SecgwSa:
        return self.tunnel.inbound

    @property
    def fence(self) -> SecgwSa | None:
        return self.tunnel.fence

    @property
    def window(self) -> int:
        return self._launch["window"]

    @property
    def esn(self) -> bool:
        return self._launch["esn"]

    @property
    def core(self) -> int:
        return self._launch["core"]

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    # --- starting and stopping ---------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        if self.alive():
            raise SecgwStartFailed(f"ipsec-secgw is already running (pid {self.pid})")
        if self._child is not None:
            self.stop()                 # a dead one's leftovers: reap, unwire, runtime dir
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            raise BinaryMissing(f"no ipsec-secgw binary at {self.binary} (build it with "
                                f"scripts/build-ipsec-secgw)")
        if self.core not in os.sched_getaffinity(0):
            raise BadSecgwConfig(f"core {self.core} is not available to this process "
                                 f"(allowed: {sorted(os.sched_getaffinity(0))})")
        self.starts += 1
        folder = os.path.join(self.topology.folder(), "secgw")
        os.makedirs(folder, exist_ok=True)
        n = self.starts
        self.file_prefix = f"{self.topology.prefix}-sg{n}"
        self.runtime_dir = os.path.join(RUNTIME_ROOT, self.file_prefix)
        self.config_path = os.path.join(folder, f"secgw-{n}.cfg")
        self.log_path = os.path.join(folder, f"secgw-{n}.log")
        with open(self.config_path, "w") as f:
            f.write(tunnel_config(self.tunnel).text())
        launch = self._launch_for(self.tunnel, self._launch, self.config_path,
                                  self.file_prefix)
        if self not in self.topology.relays:
            self.topology.relays.append(self)        # Topology.close() closes these first
        t0 = time.monotonic()
        with open(self.log_path, "wb") as out:
            self._child = self.topology.spawn(
                self.side, ["sh", "-c", 'ulimit -c 0; exec stdbuf -oL "$0" "$@"',
                            *launch_argv(launch)],
                stdout=out, stderr=subprocess.STDOUT, env=_ENV, cwd=folder)
        try:
            self._wait_ready(t0 + timeout)
            self._wire()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        hello = self._telemetry_hello()
        if hello and str(hello.get("version", "")).startswith("DPDK "):
            self.version = hello["version"][5:]

    def restart(self, *, outbound: SecgwSa | None = None, inbound: SecgwSa | None = None,
                fence: SecgwSa | None = None, window: int | None = None,
                esn: bool | None = None, timeout: float = 10.0) -> None:
        """Stop, then start with the given SAs/window/ESN replacing the current ones: a
        new session (secgw's SAs cannot change while it runs)."""
        changes = {k: v for k, v in (("outbound", outbound), ("inbound", inbound),
                                     ("fence", fence)) if v is not None}
        tunnel = dataclasses.replace(self.tunnel, **changes)
        launch = dict(self._launch, **{k: v for k, v in (("window", window), ("esn", esn))
                                       if v is not None})
        self._launch_for(tunnel, launch)
        self.stop()
        self.tunnel, self._launch = tunnel, launch
        self.start(timeout)

    @staticmethod
    def _launch_for(tunnel: Tunnel, settings: dict, config_path: str = "-",
                    file_prefix: str = "-") -> Launch:
        check_esn(tunnel, settings["esn"])
        return Launch(config_path=config_path, file_prefix=file_prefix,
                      crypto=crypto_vdevs(tunnel.outbound, tunnel.inbound), **settings)

    def _log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def _wait_ready(self, deadline: float) -> None:
        want = [f" -- lcoreid={self.core} portid={p} rxqueueid=0"
                for p in (ESP_PORT, PLAIN_PORT)]
        while True:
            text = self._log()
            if all(w in text for w in want):
                macs = {int(p): m.lower() for p, m in _PORT_MAC.findall(text)}
                if macs.get(ESP_PORT) != self.esp_mac.lower():
                    raise SecgwStartFailed(f"DPDK port {ESP_PORT} is not the ESP tap: its MAC "
                                           f"is {macs.get(ESP_PORT)}, not {self.esp_mac}")
                return
            if not self._child.alive():
                status = self._child.proc.returncode
                bad = _PARSE_ERROR.search(text)
                if bad:
                    raise BadSecgwConfig(f"ipsec-secgw refused its configuration: "
                                         f"{_one_line(bad.group(1))}")
                raise SecgwStartFailed(f"ipsec-secgw exited with status {status} while "
                                       f"starting: {self._reason(text)}")
            if time.monotonic() >= deadline:
                raise SecgwStartFailed(f"ipsec-secgw did not reach its main loop in time; "
                                       f"last words: {self.last_words(1)}")
            time.sleep(0.005)

    def _reason(self, text: str) -> str:
        """Why it exited: rte_exit's "Cause:" line and the line before it, else its last."""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].startswith("Cause:"):
                before = [ln for ln in lines[max(0, i - 3):i]
                          if not ln.startswith("EAL: Error - exiting")]
                return _one_line(" | ".join(before[-1:] + [lines[i]]))
        return self.last_words(1)

    def _tc(self, script: str, check: bool = True):
        return run(["ip", "netns", "exec", self.end.ns, "tc", "-batch", "-"],
                   input=script, check=check)

    def _wire(self) -> None:
        eth, tap = self.end.ifname, self.esp_ifname
        redirect = "protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev"
        self._tc(f"qdisc del dev {eth} ingress\n", check=False)     # a stale one, if any
        try:
            self._tc(f"qdisc add dev {eth} ingress\n"
                     f"filter add dev {eth} parent ffff: {redirect} {tap}\n"
                     f"qdisc add dev {tap} ingress\n"
                     f"filter add dev {tap} parent ffff: {redirect} {eth}\n")
        except CommandFailed as e:
            raise SecgwStartFailed(f"wiring {tap} to {eth} with tc mirred failed: "
                                   f"{_one_line(e.output)}") from None
        self._wired = True

    def _unwire(self) -> None:
        if self._wired and nsenter.exists(self.end.ns):
            self._tc(f"qdisc del dev {self.end.ifname} ingress\n", check=False)
        self._wired = False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period, by PID; remove the redirect and the
        runtime folder. Idempotent."""
        child, self._child = self._child, None
        if child is not None:
            child.kill(grace=STOP_GRACE)
            children = self.topology.made.children
            if child in children:                    # killed and reaped: not the topology's
                children.remove(child)               # to kill again
        self._unwire()
        ours = self.file_prefix and os.path.join(RUNTIME_ROOT, self.file_prefix)
        if ours and self.runtime_dir == ours:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def close(self) -> None:
        """stop(), and off the topology's list of things to close."""
        self.stop()
        if self in self.topology.relays:
            self.topology.relays.remove(self)

    def __enter__(self) -> "Secgw":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- while it runs -----------------------------------------------------------------

    def alive(self) -> bool:
        return self._child is not None and self._child.alive()

    def check(self) -> None:
        """Raise SecgwDied (with its last words) if a started secgw is gone."""
        if self._child is not None and not self._child.alive():
            raise SecgwDied(f"ipsec-secgw (pid {self._child.pid}) exited with status "
                            f"{self._child.proc.returncode}: {self.last_words(1)}")

    def last_words(self, lines: int = 5) -> str:
        """The last ``lines`` non-empty lines of its output (the current start's log),
        joined by ' | ' into one line for messages; the whole log is ``log_path``."""
        tail = [ln.strip() for ln in self._log().splitlines() if ln.strip()][-lines:]
        return " | ".join(tail)

    def cpu_seconds(self) -> float | None:
        """User + system CPU time it has used so far (from /proc), None when not running."""
        if not self.alive():
            return None
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _telemetry(self, *commands: str) -> tuple[dict, list]:
        path = os.path.join(self.runtime_dir or "", TELEMETRY_SOCKET)
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            s.settimeout(2.0)
            s.connect(path)
            hello = json.loads(s.recv(16384))
            size = int(hello.get("max_output_len", 16384))
            answers = []
            for cmd in commands:
                s.send(cmd.encode())
                answers.append(json.loads(s.recv(size)))
        return hello, answers

    def _telemetry_hello(self) -> dict | None:
        try:
            return self._telemetry()[0]
        except (OSError, ValueError):
            return None

    def stats(self) -> dict | None:
        """Counters from DPDK telemetry, or None when it does not answer::

            {"outbound": {"spi", "count", "bytes", "errors"}, "inbound": {...},
             "esp_port": {"ipackets", "opackets", "ierrors", "oerrors", "imissed"},
             "plain_port": {...}}

        SA counters count packets processed successfully; drops (replay, ICV) are not
        counted anywhere secgw reports."""
        if not self.alive():
            return None
        out, inb = self.outbound.spi, self.inbound.spi
        try:
            _, answers = self._telemetry(
                f"/ipsec/sa/stats,{out}", f"/ipsec/sa/stats,{inb}",
                f"/ethdev/stats,{ESP_PORT}", f"/ethdev/stats,{PLAIN_PORT}")
            result = {}
            for key, spi, answer in (("outbound", out, answers[0]),
                                     ("inbound", inb, answers[1])):
                sa = answer["/ipsec/sa/stats"][f"SA_SPI_{spi}"]
                result[key] = {"spi": spi,
                               **{k: int(sa[k]) for k in ("count", "bytes", "errors")}}
            for key, answer in (("esp_port", answers[2]), ("plain_port", answers[3])):
                port = answer["/ethdev/stats"]
                result[key] = {k: int(port[k]) for k in
                               ("ipackets", "opackets", "ierrors", "oerrors", "imissed")}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return result

    # --- espspec's side of it ----------------------------------------------------------

    def plain_socket(self) -> socket.socket:
        """An AF_PACKET socket bound to the plaintext tap (ETH_P_ALL, raw frames); the
        caller closes it. Open it after each start (the tap is new)."""
        s = self.topology.socket(self.side, socket.AF_PACKET, socket.SOCK_RAW,
                                 socket.htons(ETH_P_ALL))
        try:
            s.bind((self.plain_ifname, ETH_P_ALL))
        except OSError:
            s.close()
            raise
        return s

    def plain_frame(self, packet: bytes) -> bytes:
        """``packet`` (an inner IP packet) as a frame toward the secgw's plaintext port."""
        return ether_frame(self.plain_mac, self.plain_peer_mac, packet)

    def esp_frame(self, esp: bytes) -> bytes:
        """``esp`` (ESP from its SPI to its ICV) as the frame the peer end sends toward the
        secgw: its MAC and outer address to ours, IP protocol 50."""
        return ip_frame(self.peer.mac, self.end.mac, self.peer.address, self.end.address,
                        PROTO_ESP, esp)
