"""Two strongSwan charons on a topology: A (the implementation under test) and B (its peer).

Theory of operation: ``StrongSwanPair(topology, workdir)`` owns two daemons. ``start()``
puts the inner addresses on ``lo`` of each end (kernel-libipsec installs a route through
its TUN device for every outbound policy and fails the CHILD_SA when no local address lies
in the local traffic selector), writes each charon's strongswan.conf into
``workdir/a`` and ``workdir/b`` (``config.py``), and starts each with
``topology.spawn`` under ``unshare --mount`` with ``workdir/<side>/run`` bound over
``/run``: charon's PID file path is compiled in, so two daemons need two private /run
folders. The PID the rig holds is charon's own (``ip netns exec``, ``unshare`` and ``sh``
all exec), and everything is stopped by that PID, never by name. Each daemon has its own
vici socket in its folder; the rig talks to it with the ``vici`` package (PSK, connection,
initiate, terminate, list-sas).

``establish(proposal)`` loads into both daemons one connection holding exactly one new
child config (``c1``, ``c2``, ...; B's traffic selectors mirrored), has A initiate it (the
first call also brings the IKE SA up; later ones reuse it), reads the new CHILD_SA's
keys from both daemons' logs (``logparse.py``), checks them against vici's SPIs and
against each other, then terminates the previous CHILD_SA, so one is installed at a time.
A is always the CHILD_SA initiator, so its outbound SA uses the initiator keys. A refused
proposal raises ``ProposalRefused`` with one line naming the daemon's own words.

Drops exist only as lines of A's log (``esp = 1``): ``mark()`` is a byte offset in that
file, ``drops_since(mark)`` and ``wait_drop(mark, timeout)`` read from it. ``counters()``
asks vici. ``kill_peer()`` SIGKILLs B (it sends no DELETE), ``close()`` stops both.
The topology, its relay and its cleanup stay the caller's; ``probe_proposals`` tries a
list of proposals on a started pair.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import threading
import time
import types
from dataclasses import dataclass

from spec_model.errors import EspSpecError

from ..net.procs import run
from .config import ChildConfig, ConnConfig, DaemonConfig, conn_message, shared_message, \
    strongswan_conf, swanctl_conf
from .logparse import Drop, KeyParser, KeyRecord, drops_in, parse_line, tun_name

CHARON = "/usr/lib/ipsec/charon"
CONN = "rig"
SUN_PATH_MAX = 107
LIFE_TIME = 100_000_000     # seconds (3 years): never reached; see _children
VICI_TIMEOUT = 60.0         # a vici answer slower than this means a wedged daemon
_ENV_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class RigError(EspSpecError):
    """Base of everything the rig raises on purpose; messages are one line."""


class CharonStartFailed(RigError):
    """A charon exited, or its vici socket did not answer, while starting."""


class CharonDied(RigError):
    """A charon that was running is gone."""


class ViciError(RigError):
    """A vici command failed for a reason other than a refused proposal."""


class IkeFailed(RigError):
    """The IKE SA between A and B could not be established."""


class ProposalRefused(RigError):
    """A CHILD_SA with the asked-for ESP proposal was refused by A or B."""


class KeysNotLogged(RigError):
    """The keys of a new CHILD_SA were not found (or did not agree) in the logs."""


@dataclass(frozen=True)
class Negotiated:
    """One CHILD_SA as charon A sees it."""
    proposal: str            # the esp_proposals string used
    out_spi: int             # A's outbound SA (A -> B)
    in_spi: int              # A's inbound SA (B -> A)
    out_keymat: bytes        # encryption key (|| salt for AEADs) of A's outbound SA
    in_keymat: bytes
    child: str               # the child config's name (c1, c2, ...)
    child_id: int            # charon A's unique id of the CHILD_SA
    mode: str = "tunnel"
    out_integ: bytes = b""   # integrity keys, for proposals without an AEAD
    in_integ: bytes = b""
    seconds: float = 0.0     # from initiate to keys read


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Log:
    """Charon's log file, read by byte offsets (complete lines only)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def end(self) -> int:
        """The offset after the last complete line written so far."""
        try:
            with open(self.path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                back = min(size, 4096)
                f.seek(size - back)
                tail = f.read(back)
        except FileNotFoundError:
            return 0
        if not tail or tail.endswith(b"\n"):
            return size
        cut = tail.rfind(b"\n")
        return size - back + cut + 1 if cut >= 0 else size - back

    def lines(self, start: int) -> list[tuple[int, str]]:
        """(offset, line) for every complete line from ``start`` on."""
        try:
            with open(self.path, "rb") as f:
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            return []
        out, at = [], start
        for raw in data.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break
            out.append((at, raw.decode("utf-8", "replace").rstrip("\n")))
            at += len(raw)
        return out


class _Charon:
    """One daemon: its folder, process, vici session and log."""

    def __init__(self, topology, side: str, folder: str, conn: ConnConfig,
                 esp_level: int = 1) -> None:
        self.topology, self.side, self.folder, self.conn = topology, side, folder, conn
        self.daemon = DaemonConfig(vici_socket=os.path.join(folder, "charon.vici"),
                                   log_file=os.path.join(folder, "charon.log"),
                                   esp_level=esp_level)
        if len(self.daemon.vici_socket.encode()) > SUN_PATH_MAX:
            raise CharonStartFailed(f"charon {side}: vici socket path longer than "
                                    f"{SUN_PATH_MAX} bytes: {self.daemon.vici_socket}")
        self.conf_path = os.path.join(folder, "strongswan.conf")
        self.log = _Log(self.daemon.log_file)
        self.child = None
        self.session = None
        self._sock = None
        self._lock = threading.Lock()

    # --- process ----------------------------------------------------------------------
    def spawn(self) -> None:
        run_dir = os.path.join(self.folder, "run")
        os.makedirs(run_dir, exist_ok=True)
        for stale in (os.path.join(run_dir, "charon.pid"), self.daemon.vici_socket,
                      self.daemon.log_file):
            if os.path.lexists(stale):
                os.unlink(stale)
        with open(self.conf_path, "w") as f:
            f.write(strongswan_conf(self.daemon))
        script = f"mount --bind {shlex.quote(run_dir)} /run && exec {shlex.quote(CHARON)}"
        env = {"PATH": _ENV_PATH, "STRONGSWAN_CONF": self.conf_path}
        with open(os.path.join(self.folder, "charon.out"), "wb") as out:
            self.child = self.topology.spawn(
                self.side, ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            script], env=env, stdout=out, stderr=subprocess.STDOUT)

    def connect(self, deadline: float) -> None:
        import vici
        while True:
            if not self.child.alive():
                raise CharonStartFailed(f"charon {self.side} exited with status "
                                        f"{self.child.proc.returncode}: {self.last_words()}")
            if os.path.exists(self.daemon.vici_socket):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.settimeout(max(0.1, deadline - time.monotonic()))
                    s.connect(self.daemon.vici_socket)
                    session = vici.Session(s)
                    self.version = session.version()["version"].decode()
                    s.settimeout(VICI_TIMEOUT)
                    self._sock, self.session = s, session
                    return
                except Exception as e:  # noqa: BLE001 -- not up yet: retry
                    s.close()
                    if time.monotonic() >= deadline:
                        raise CharonStartFailed(f"charon {self.side}: vici socket "
                                                f"{self.daemon.vici_socket} did not answer: "
                                                f"{_one_line(e)}") from None
            if time.monotonic() >= deadline:
                raise CharonStartFailed(f"charon {self.side}: no vici socket "
                                        f"{self.daemon.vici_socket} after the timeout; "
                                        f"{self.last_words()}")
            time.sleep(0.005)

    def last_words(self) -> str:
        for path in (os.path.join(self.folder, "charon.out"), self.daemon.log_file):
            try:
                with open(path, "rb") as f:
                    tail = f.read().decode("utf-8", "replace").strip().splitlines()
            except OSError:
                continue
            if tail:
                return _one_line(tail[-1])
        return "it printed nothing"

    def alive(self) -> bool:
        return self.child is not None and self.child.alive()

    def sigkill(self) -> None:
        if self.child is not None and self.child.proc.returncode is None:
            try:
                os.kill(self.child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.child.proc.wait()
        self.disconnect()

    def stop(self) -> None:
        self.disconnect()
        if self.child is not None:
            self.child.kill()          # SIGTERM to its group, then SIGKILL, then reaped

    def disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = self.session = None

    # --- vici -------------------------------------------------------------------------
    def call(self, what: str, *args, **kw):
        if self.session is None:
            raise CharonDied(f"charon {self.side} is not connected")
        import vici.exception
        with self._lock:
            try:
                out = getattr(self.session, what)(*args, **kw)
                return list(out) if isinstance(out, types.GeneratorType) else out
            except vici.exception.CommandException as e:
                raise ViciError(f"charon {self.side}: {what}: {_one_line(e)}") from None
            except (OSError, vici.exception.SessionException) as e:
                if not self.alive():
                    raise CharonDied(f"charon {self.side} died "
                                     f"(status {self.child.proc.returncode})") from None
                raise ViciError(f"charon {self.side}: {what}: {_one_line(e)}") from None

    def streamed(self, command: str, message: dict) -> tuple[list[str], str | None]:
        """Run a command that streams control-log events: (log lines, error or None)."""
        if self.session is None:
            raise CharonDied(f"charon {self.side} is not connected")
        import vici.exception
        lines: list[str] = []
        with self._lock:
            try:
                for event in self.session.streamed_request(command, "control-log", message):
                    lines.append(event.get("msg", b"").decode("utf-8", "replace"))
            except vici.exception.CommandException as e:
                return lines, _one_line(e)
            except (OSError, vici.exception.SessionException) as e:
                if not self.alive():
                    raise CharonDied(f"charon {self.side} died "
                                     f"(status {self.child.proc.returncode})") from None
                raise ViciError(f"charon {self.side}: {command}: {_one_line(e)}") from None
        return lines, None

    def child_sa(self, name: str) -> dict | None:
        """The list-sas entry of the CHILD_SA of child config ``name``, or None."""
        for entry in self.call("list_sas", {"ike": self.conn.name, "child": name}):
            for ike in entry.values():
                for child in ike.get("child-sas", {}).values():
                    if child.get("name", b"").decode() == name:
                        return child
        return None

    def ike_up(self) -> bool:
        for entry in self.call("list_sas", {"ike": self.conn.name, "noblock": "yes"}):
            for ike in entry.values():
                if ike.get("state") == b"ESTABLISHED":
                    return True
        return False

    def record(self, start: int, unique_id: int | None, spi_in: int | None,
               deadline: float) -> KeyRecord | None:
        """The key record, logged after offset ``start``, of the CHILD_SA with this
        unique id or inbound SPI; waits for it until ``deadline``."""
        while True:
            parser = KeyParser()
            for _, line in self.log.lines(start):
                rec = parser.feed(line)
                if rec is None:
                    continue
                if (unique_id is not None and rec.unique_id == unique_id) or \
                        (spi_in is not None and rec.inbound.spi == spi_in):
                    return rec
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.002)


def _reason(lines: list[str]) -> str | None:
    """The most telling line among a failed CHILD_SA's log lines."""
    ranked = ("IPsec SA:", "not supported", "unsupported", "no acceptable proposal",
              "NO_PROPOSAL_CHOSEN", "unable to install", "TS_UNACCEPT", "invalid", "failed")
    for needle in ranked:
        for line in lines:
            if needle.lower() in line.lower():
                parsed = parse_line(line)
                return _one_line(parsed.msg if parsed else line)
    return None


class StrongSwanPair:
    """Charon A in end a (the IUT) and charon B in end b (its IKE peer); see the module."""

    def __init__(self, topology, workdir: str, *, psk: bytes = b"espspec strongSwan rig PSK",
                 inner_a: str = "203.0.113.1", inner_b: str = "203.0.113.2",
                 inner6_a: str | None = "2001:db8::1", inner6_b: str | None = "2001:db8::2",
                 esp_log_level: int = 1) -> None:
        """``esp_log_level`` is charon A's ``esp`` log level: 1 logs replay, ICV and
        padding drops; 2 adds unknown-SPI drops, and one line per packet received."""
        self.topology, self.workdir = topology, os.path.abspath(workdir)
        self.inner = {"a": inner_a, "b": inner_b}
        # IPv6 inner addresses beside the IPv4 ones (None: an IPv4-only tunnel); the
        # topology turns IPv6 off everywhere, start() turns it on for lo alone
        self.inner6 = {"a": inner6_a, "b": inner6_b} if inner6_a and inner6_b else {}
        ends = topology.ends
        self.conns = {
            "a": ConnConfig(CONN, ends["a"].address, ends["b"].address, "a.espspec",
                            "b.espspec", psk),
            "b": ConnConfig(CONN, ends["b"].address, ends["a"].address, "b.espspec",
                            "a.espspec", psk),
        }
        self.charons = {side: _Charon(topology, side, os.path.join(self.workdir, side),
                                      self.conns[side],
                                      esp_log_level if side == "a" else 1)
                        for side in ("a", "b")}
        self.current: Negotiated | None = None
        self.version = ""
        self.tun_name = ""
        self._serial = 0
        self._closed = False
        self._started = False

    # --- life cycle -------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        if self._started:
            return
        self._started = True
        deadline = time.monotonic() + timeout
        for side, addr in self.inner.items():
            run(["ip", "-n", self.topology.ns[side], "addr", "replace", f"{addr}/32",
                 "dev", "lo"])
        for side, addr in self.inner6.items():
            # lo and the TUN device charon is about to create (default) get IPv6 back:
            # libipsec routes the IPv6 selectors through its TUN device; eth0 stays off
            for key in ("lo", "default"):
                run(["ip", "netns", "exec", self.topology.ns[side], "sysctl", "-qw",
                     f"net.ipv6.conf.{key}.disable_ipv6=0"])
            run(["ip", "-n", self.topology.ns[side], "addr", "replace", f"{addr}/128",
                 "dev", "lo", "nodad"])
        for c in self.charons.values():
            os.makedirs(c.folder, exist_ok=True)
            c.spawn()
        for c in self.charons.values():
            c.connect(deadline)
            c.call("load_shared", shared_message(c.conn))
            c.call("load_conn", conn_message(c.conn, ()))
        a = self.charons["a"]
        self.version = a.version
        self.tun_name = tun_name(line for _, line in a.log.lines(0)) or ""
        if not self.tun_name:
            raise CharonStartFailed("charon a logged no TUN device (is kernel-libipsec "
                                    "loaded?)")

    def alive(self) -> bool:
        return all(c.alive() for c in self.charons.values())

    def kill_peer(self) -> None:
        """SIGKILL charon B by its PID: it sends no DELETE, A keeps its SAs."""
        self.charons["b"].sigkill()

    def close(self) -> None:
        """Stop both charons by PID (SIGTERM, then SIGKILL). Idempotent."""
        if self._closed:
            return
        self._closed = True
        problems = []
        for c in self.charons.values():
            try:
                c.stop()
            except Exception as e:  # noqa: BLE001 -- the other must still go
                problems.append(f"charon {c.side}: {e}")
        if problems:
            raise RigError("; ".join(problems))

    def __enter__(self) -> "StrongSwanPair":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def pids(self) -> dict[str, int]:
        return {side: c.child.pid for side, c in self.charons.items() if c.child}

    # --- CHILD_SAs --------------------------------------------------------------------
    def _children(self, name: str, proposal: str, mode: str, replay_window: int | None
                  ) -> dict[str, ChildConfig]:
        """A's and B's config of child ``name``. charon will not initiate a CHILD_SA whose
        config equals that of one already installed ("not establishing CHILD_SA ... due
        to existing duplicate"), and the name is not part of the comparison: each child
        gets its own (unreachable) life_time so that a proposal can be used again."""
        ts = {side: f"{addr}/32" + (f",{self.inner6[side]}/128" if self.inner6 else "")
              for side, addr in self.inner.items()}
        if mode == "transport":
            ts = {side: f"{e.address}/32" for side, e in self.topology.ends.items()}
        life = LIFE_TIME + self._serial
        return {"a": ChildConfig(name, proposal, ts["a"], ts["b"], mode, replay_window,
                                 life),
                "b": ChildConfig(name, proposal, ts["b"], ts["a"], mode, replay_window,
                                 life)}

    def establish(self, proposal: str = "aes128gcm16", *, replay_window: int | None = None,
                  mode: str = "tunnel", timeout: float = 10.0) -> Negotiated:
        """A new CHILD_SA (A initiates) with this ESP proposal; the previous one is closed
        on both ends once the new one is up. Raises ProposalRefused when refused."""
        if not self._started or self._closed:
            raise RigError("the pair is not running (start() it, and not after close())")
        for c in self.charons.values():
            if not c.alive():
                raise CharonDied(f"charon {c.side} is not running")
        self._serial += 1
        name = f"c{self._serial}"
        children = self._children(name, proposal, mode, replay_window)
        a, b = self.charons["a"], self.charons["b"]
        for side, c in self.charons.items():
            with open(os.path.join(c.folder, "swanctl.conf"), "w") as f:
                f.write(swanctl_conf(c.conn, (children[side],)))
            try:
                c.call("load_conn", conn_message(c.conn, (children[side],)))
            except ViciError as e:
                raise ProposalRefused(f"{proposal}: charon {side} rejected the config: "
                                      f"{e}") from None
        marks = {side: c.log.end() for side, c in self.charons.items()}
        t0 = time.monotonic()
        lines, error = a.streamed("initiate", {
            "ike": CONN, "child": name, "timeout": int(timeout * 1000), "loglevel": 1})
        if error is not None:
            self._failed(proposal if mode == "tunnel" else f"{proposal} in {mode} mode",
                         lines, marks, error)
        deadline = time.monotonic() + min(timeout, 2.0)
        entry = a.child_sa(name)
        if entry is None:
            raise KeysNotLogged(f"{proposal}: initiate succeeded but vici lists no "
                                f"CHILD_SA {name}")
        uid = int(entry["uniqueid"])
        spi_in, spi_out = int(entry["spi-in"], 16), int(entry["spi-out"], 16)
        rec_a = a.record(marks["a"], uid, None, deadline)
        rec_b = b.record(marks["b"], None, spi_out, deadline)
        seconds = time.monotonic() - t0
        if rec_a is None:
            raise KeysNotLogged(f"{proposal}: no keys of CHILD_SA {name}{{{uid}}} in "
                                f"{a.daemon.log_file} (is chd = 4 set?)")
        if (rec_a.inbound.spi, rec_a.outbound.spi) != (spi_in, spi_out):
            raise KeysNotLogged(f"{proposal}: the log's SPIs {rec_a.inbound.spi:#010x}/"
                                f"{rec_a.outbound.spi:#010x} are not vici's {spi_in:#010x}/"
                                f"{spi_out:#010x}")
        out_k, in_k, out_i, in_i = rec_a.keys_for(initiator=True)
        if not out_k or not in_k:
            raise KeysNotLogged(f"{proposal}: CHILD_SA {name}{{{uid}}} logged no "
                                f"encryption keys")
        if rec_b is not None and rec_b.keys_for(initiator=False)[:2] != (in_k, out_k):
            raise KeysNotLogged(f"{proposal}: the keys A and B logged for CHILD_SA {name} "
                                f"differ")
        neg = Negotiated(proposal, spi_out, spi_in, out_k, in_k, name, uid, mode,
                         out_i, in_i, seconds)
        previous, self.current = self.current, neg
        if previous is not None:
            self._close_child(previous, timeout)
        return neg

    def _close_child(self, neg: Negotiated, timeout: float) -> None:
        a = self.charons["a"]
        _, error = a.streamed("terminate", {"child-id": str(neg.child_id),
                                            "timeout": int(timeout * 1000), "loglevel": 1})
        if error is not None:
            raise ViciError(f"charon a: closing CHILD_SA {neg.child}{{{neg.child_id}}}: "
                            f"{error}")

    def _failed(self, proposal: str, lines: list[str], marks: dict, error: str):
        a, b = self.charons["a"], self.charons["b"]
        if not a.alive() or not b.alive():
            dead = "a" if not a.alive() else "b"
            raise CharonDied(f"{proposal}: charon {dead} died while establishing")
        ours = _reason(lines) or _reason([l for _, l in a.log.lines(marks["a"])])
        theirs = _reason([l for _, l in b.log.lines(marks["b"])])
        if not a.ike_up():
            raise IkeFailed(f"{proposal}: no IKE SA: {ours or error}")
        detail = f"A: {ours or error}" + (f"; B: {theirs}" if theirs else "")
        raise ProposalRefused(f"{proposal} refused: {detail}")

    # --- observation ------------------------------------------------------------------
    def counters(self) -> dict:
        """A's current CHILD_SA: bytes/packets in/out, as vici lists them."""
        if self.current is None:
            raise RigError("no CHILD_SA established yet")
        entry = self.charons["a"].child_sa(self.current.child)
        if entry is None:
            raise ViciError(f"charon a lists no CHILD_SA {self.current.child}")
        return {k.replace("-", "_"): int(entry.get(k, b"0"))
                for k in ("bytes-in", "packets-in", "bytes-out", "packets-out")}

    def child_sas(self, side: str = "a") -> list[dict]:
        """Every CHILD_SA charon ``side`` lists: name, unique id and SPIs."""
        out = []
        for entry in self.charons[side].call("list_sas", {"ike": CONN}):
            for ike in entry.values():
                for child in ike.get("child-sas", {}).values():
                    out.append({"name": child["name"].decode(),
                                "id": int(child["uniqueid"]),
                                "spi_in": int(child["spi-in"], 16),
                                "spi_out": int(child["spi-out"], 16),
                                "state": child["state"].decode()})
        return out

    def mark(self) -> int:
        """A position in A's log: drops after it are ``drops_since(mark)``."""
        return self.charons["a"].log.end()

    def drops_since(self, mark: int) -> list[Drop]:
        return drops_in(self.charons["a"].log.lines(mark))

    def wait_drop(self, mark: int, timeout: float) -> Drop | None:
        """The first drop logged after ``mark``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            drops = self.drops_since(mark)
            if drops:
                first = drops[0]
                if first.reason == "replay" and first.spi is None:
                    time.sleep(0.02)          # its detail line follows at once
                    first = self.drops_since(mark)[0]
                return first
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)

    def log_lines(self, side: str = "a", mark: int = 0) -> list[str]:
        return [line for _, line in self.charons[side].log.lines(mark)]


def probe_proposals(pair: StrongSwanPair, candidates) -> dict[str, str | None]:
    """For each proposal: None when a CHILD_SA with it came up, else the one-line reason."""
    out: dict[str, str | None] = {}
    for proposal in candidates:
        try:
            pair.establish(proposal)
        except (ProposalRefused, KeysNotLogged) as e:
            out[proposal] = str(e)
        else:
            out[proposal] = None
    return out
