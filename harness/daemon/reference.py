"""The reference daemon: espspec's model behind a TUN device (``espspec daemon``).

Theory of operation: one process, one thread, one ``select`` loop over three file
descriptors -- the TUN device (the tunnel's inner side), the outer socket (UDP, or raw IP
protocol 50 with the ``esp`` encapsulation) and the read end of a socket pair that signal
handlers wake the loop through (``signal.set_wakeup_fd``). Everything it needs comes from
the SA file (``safile``); everything it observes goes to stdout as one line per event,
flushed at once, so a harness reacts to a drop at once instead of waiting out a deadline.
On a pipe the lines are written without blocking: a reader that lags loses event lines
(counted by a ``LOST n`` line), never stalls the data path.

Start-up: read the SA file (a fault: one line on stderr, exit 2), build a
``spec_model.Sender`` from the outbound SA and a ``spec_model.Receiver`` from the inbound
one, create the TUN device (``TUNSETIFF``, ``IFF_TUN | IFF_NO_PI``; non-persistent, so it
disappears when the daemon's descriptor closes), turn IPv6 off on it when the tunnel is
IPv4 (no router solicitations to carry), bring it up, put ``tunnel.local`` on it (/32 or
/128) and route ``tunnel.peer`` into it (``ip addr``/``ip route``), bind the outer socket
to ``local``, then print ``READY generation=N``. A setup failure (no TUN support, address
in use) is one line on stderr and exit 1.

Outbound, a packet read from the TUN: in tunnel mode it is the payload as it is (an inner
IP packet, next header from its version); in transport mode its IP header is dropped and
the transport payload is protected with the IP protocol as next header -- only packets
from ``tunnel.local`` to ``tunnel.peer`` (others: ``IGNORE``). The sub-SA is the one
``--sub-sa K`` names, else the flow rule ``flow_sub_sa``: CRC-32 of source address,
destination address, protocol and, for TCP, UDP, UDP-Lite and SCTP, the 4 port bytes,
modulo the sub-SA count -- one flow stays on one sub-SA, so its packets stay in order.
A refusal by the sender (a hard limit, the counter space) prints ``REFUSE``.

Inbound, a datagram from the outer socket: with ESP in UDP, a single 0xff byte (a
NAT-keepalive) and anything starting with four zero bytes (the non-ESP marker in front of
IKE, RFC 3948) is not ESP: ``IGNORE``. The rest goes to ``Receiver.open``: ``DELIVER``
and the payload written to the TUN (in transport mode behind an IP header rebuilt from
``tunnel.peer`` to ``tunnel.local``), or ``DROP`` with the model's reason and
requirement. The source address of a datagram is not checked (as strongSwan does not).
Bad input from the wire never ends the daemon.

Control (``--control``): stdin carries one command per line, each answered on stdout by
one line, ``OK <command>`` or ``ERROR <command>: <why>`` -- ``SUB-SA K`` (send what
follows on sub-SA K, as ``--sub-sa`` does), ``SET-COUNTER K V`` (sub-SA K's counter to
V, forward only) and ``COUNTERS`` (``OK COUNTERS c0 c1 ...``, the last SN sent per
sub-SA). A rekey (SIGHUP) forgets ``SUB-SA``: the new SAs may have fewer sub-SAs. A harness steers the daemon through it without knowing its flow rule. End of
stdin ends control, not the daemon. ``sender_class``/``receiver_class`` replace the
model's ends (``espspec daemon --mutant NAME`` runs a mutant behind the TUN device).

Signals: SIGHUP re-reads the SA file -- a rekey: a higher generation, new SAs (and
possibly a new profile), the same interface, addresses, ports and encapsulation; new
``Sender`` and ``Receiver`` (no overlap: packets of the old inbound SA are dropped as
unknown-spi) and ``READY generation=N``. A file that cannot be a rekey prints
``REKEY-FAILED`` (and the reason on stderr) and keeps the old SAs. SIGTERM and SIGINT end
the loop: the TUN goes with its descriptor, exit 0.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import zlib
from typing import IO

from spec_model import Delivered, Mode, Receiver, Sender
from spec_model.errors import EspSpecError, SendRefused
from spec_model.profile import Framing
from spec_model.subsa import spi_for

from ..net.frames import ip_packet
from .safile import SaFile, SaFileError, read

__all__ = ["EXIT_BAD_SA_FILE", "EXIT_SETUP", "ReferenceDaemon", "flow_sub_sa", "main"]

EXIT_BAD_SA_FILE, EXIT_SETUP = 2, 1
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1
PORT_PROTOCOLS = frozenset({6, 17, 132, 136})     # TCP, UDP, SCTP, UDP-Lite
MAX_DATAGRAM = 65535


class SetupError(Exception):
    """The daemon could not create its TUN device or bind its socket."""


def flow_sub_sa(packet: bytes, n_sub_sas: int) -> int:
    """The sub-SA an inner IP packet goes out on: CRC-32 of (source address, destination
    address, protocol byte, the 4 port bytes for TCP/UDP/SCTP/UDP-Lite) modulo N. Packets
    that are not IPv4 or IPv6 go on sub-SA 0."""
    if n_sub_sas == 1 or not packet:
        return 0
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        ihl = (packet[0] & 15) * 4
        proto, addrs, l4 = packet[9], packet[12:20], packet[ihl:ihl + 4]
    elif version == 6 and len(packet) >= 40:
        proto, addrs, l4 = packet[6], packet[8:40], packet[40:44]
    else:
        return 0
    key = addrs + bytes([proto]) + (l4 if proto in PORT_PROTOCOLS else b"")
    return zlib.crc32(key) % n_sub_sas


def open_tun(name: str) -> tuple[int, bool]:
    """(descriptor, created): attach to or create the TUN device ``name``."""
    existed = os.path.exists(f"/sys/class/net/{name}")
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise SetupError(f"cannot open /dev/net/tun: {e.strerror}") from None
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError as e:
        os.close(fd)
        raise SetupError(f"TUNSETIFF {name}: {e.strerror}"
                         f"{' (an interface of that name exists)' if existed else ''}"
                         ) from None
    return fd, not existed


def _link_up(name: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS,
                                                  struct.pack("16sH", name.encode(), 0)))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", name.encode(), flags | IFF_UP))


def _ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if r.returncode:
        raise SetupError(f"ip {' '.join(args)}: {r.stderr.strip() or r.returncode}")


class ReferenceDaemon:
    def __init__(self, sa_path: str, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr,
                 sub_sa: int | None = None, control: IO[bytes] | None = None,
                 sender_class: type = Sender, receiver_class: type = Receiver) -> None:
        self.sa_path = sa_path
        self.control = control
        self._control_buf = b""
        self.sender_class, self.receiver_class = sender_class, receiver_class
        self.out, self.err = out, err
        self.fixed_sub_sa = self.cli_sub_sa = sub_sa
        self.cfg: SaFile | None = None
        self.sender: Sender | None = None
        self.receiver: Receiver | None = None
        self.tun = -1
        self.sock: socket.socket | None = None
        self.signals: list[int] = []
        self._wake_r = self._wake_w = None
        self._pipe_fd: int | None = None
        self._lost = 0
        try:
            if out is sys.stdout and stat.S_ISFIFO(os.fstat(out.fileno()).st_mode):
                out.flush()
                os.set_blocking(out.fileno(), False)
                self._pipe_fd = out.fileno()
        except (OSError, ValueError, AttributeError):
            pass

    # --- reporting -----------------------------------------------------------------------
    def say(self, line: str, must: bool = False) -> None:
        """One report line. On a pipe, written with non-blocking writes of whole lines
        (below PIPE_BUF, so atomic): when the reader lags, an event line is lost and
        counted (``LOST n`` precedes the next line that gets through) rather than stall
        the data path; a ``must`` line (READY, REKEY-FAILED) waits for room."""
        if self.out is None:
            return
        if self._pipe_fd is None:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (BrokenPipeError, ValueError):     # the reader went away: carry on
                self.out = None
            return
        data = (f"LOST {self._lost}\n" if self._lost else "").encode() + line.encode() + b"\n"
        while True:
            try:
                os.write(self._pipe_fd, data)
                self._lost = 0
                return
            except BlockingIOError:
                if not must:
                    self._lost += 1
                    return
                select.select([], [self._pipe_fd], [], 1.0)
            except (BrokenPipeError, OSError):
                self.out = None
                return

    def complain(self, line: str) -> None:
        try:
            self.err.write(f"espspec daemon: {line}\n")
            self.err.flush()
        except (BrokenPipeError, ValueError):
            pass

    # --- SAs -------------------------------------------------------------------------------
    def install(self, cfg: SaFile) -> None:
        sender = self.sender_class(cfg.profile, cfg.outbound.keymat, cfg.outbound.spi)
        receiver = self.receiver_class(cfg.profile, cfg.inbound.keymat, cfg.inbound.spi)
        if self.cli_sub_sa is not None and not 0 <= self.cli_sub_sa < cfg.profile.n_sub_sas:
            raise SaFileError(f"{self.sa_path}: --sub-sa {self.cli_sub_sa}, but the profile "
                              f"has {cfg.profile.n_sub_sas} sub-SAs")
        self.cfg, self.sender, self.receiver = cfg, sender, receiver
        self.fixed_sub_sa = self.cli_sub_sa          # a SUB-SA line lasts until a rekey
        p = cfg.profile
        self._tunnel = p.mode is Mode.TUNNEL
        self._udp_esp = cfg.encapsulation == "udp" and p.framing is Framing.ESP
        self._raw = cfg.encapsulation == "esp"

    def rekey(self) -> None:
        old = self.cfg
        try:
            new = read(self.sa_path)
            same = [f for f in ("encapsulation", "local", "peer", "tunnel_local",
                                "tunnel_peer", "interface")
                    if getattr(new, f) != getattr(old, f)]
            if same:
                raise SaFileError(f"{self.sa_path}: a rekey replaces the SAs only, but "
                                  f"{', '.join(same)} changed")
            if new.generation <= old.generation:
                raise SaFileError(f"{self.sa_path}: generation {new.generation} after "
                                  f"{old.generation}; a rekey needs a higher one")
            self.install(new)
        except EspSpecError as e:
            self.complain(str(e).splitlines()[0])
            self.say(f"REKEY-FAILED generation={old.generation}", must=True)
            return
        self.say(f"READY generation={new.generation}", must=True)

    # --- set-up and tear-down --------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        self.tun, self.created = open_tun(cfg.interface)
        inner = ipaddress.ip_address(cfg.tunnel_local)
        if inner.version == 4:
            try:
                with open(f"/proc/sys/net/ipv6/conf/{cfg.interface}/disable_ipv6", "w") as f:
                    f.write("1")
            except OSError:
                pass                       # no IPv6 in this kernel: nothing to silence
        try:
            _link_up(cfg.interface)
        except OSError as e:
            raise SetupError(f"bringing {cfg.interface} up: {e.strerror}") from None
        plen = 32 if inner.version == 4 else 128
        _ip("addr", "replace", f"{cfg.tunnel_local}/{plen}", "dev", cfg.interface,
            *(("nodad",) if inner.version == 6 else ()))
        _ip("route", "replace", f"{cfg.tunnel_peer}/{plen}", "dev", cfg.interface)
        family = socket.AF_INET6 if ":" in cfg.local.address else socket.AF_INET
        try:
            if self._raw:
                self.sock = socket.socket(family, socket.SOCK_RAW, 50)
                self.sock.bind((cfg.local.address, 0))
            else:
                self.sock = socket.socket(family, socket.SOCK_DGRAM)
                self.sock.bind((cfg.local.address, cfg.local.port))
        except OSError as e:
            raise SetupError(f"binding {cfg.local.address} port {cfg.local.port}: "
                             f"{e.strerror}") from None
        self.sock.setblocking(False)
        self._raw_v4 = self._raw and family == socket.AF_INET

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.tun >= 0:
            os.close(self.tun)            # a TUN we created goes with its last descriptor
            self.tun = -1
        for fd in (self._wake_r, self._wake_w):
            if fd is not None:
                fd.close()
        self._wake_r = self._wake_w = None

    def _on_signal(self, signum, frame) -> None:
        self.signals.append(signum)

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    # --- the data path ---------------------------------------------------------------------
    def outbound(self, packet: bytes) -> None:
        cfg, p = self.cfg, self.cfg.profile
        if self._tunnel:
            payload, next_header = packet, None
        else:
            payload, next_header = self._transport_payload(packet)
            if payload is None:
                return
        sub_sa = (self.fixed_sub_sa if self.fixed_sub_sa is not None
                  else flow_sub_sa(packet, p.n_sub_sas))
        try:
            wire = self.sender.seal(sub_sa, payload, next_header).wire
        except SendRefused as e:
            self.say(f"REFUSE sub_sa={sub_sa} requirement={e.requirement or '-'}")
            return
        except EspSpecError as e:          # e.g. not an IP packet in tunnel mode
            self.say(f"IGNORE reason=unsendable detail={_word(str(e))}")
            return
        try:
            self.sock.sendto(wire, (cfg.peer.address, cfg.peer.port or 0))
        except OSError as e:
            self.say(f"SEND-FAILED errno={errno.errorcode.get(e.errno, e.errno)}")

    def _transport_payload(self, packet: bytes) -> tuple[bytes | None, int | None]:
        cfg = self.cfg
        version = packet[0] >> 4 if packet else 0
        if version == 4 and len(packet) >= 20:
            ihl = (packet[0] & 15) * 4
            src, dst, proto = packet[12:16], packet[16:20], packet[9]
            if struct.unpack_from("!H", packet, 6)[0] & 0x3FFF:
                self.say("IGNORE reason=fragment")
                return None, None
            total = struct.unpack_from("!H", packet, 2)[0]
            body = packet[ihl:total]
        elif version == 6 and len(packet) >= 40:
            src, dst, proto = packet[8:24], packet[24:40], packet[6]
            body = packet[40:40 + struct.unpack_from("!H", packet, 4)[0]]
        else:
            self.say("IGNORE reason=not-ip")
            return None, None
        if (ipaddress.ip_address(src) != ipaddress.ip_address(cfg.tunnel_local)
                or ipaddress.ip_address(dst) != ipaddress.ip_address(cfg.tunnel_peer)):
            self.say("IGNORE reason=not-the-transport-pair")
            return None, None
        return body, proto

    def inbound(self, data: bytes) -> None:
        if self._raw_v4:                   # an IPv4 raw socket hands over the IP header
            data = data[(data[0] & 15) * 4:] if data else data
        if self._udp_esp:
            if data == b"\xff":
                self.say("IGNORE reason=nat-keepalive")
                return
            if data[:4] == b"\x00\x00\x00\x00":
                self.say(f"IGNORE reason=non-esp-marker len={len(data)}")
                return
        try:
            outcome = self.receiver.open(data)
        except Exception as e:             # the model must not crash; if it does, say so
            self.say(f"DROP spi=- seq=- reason=model-error requirement=- "
                     f"detail={type(e).__name__}")
            return
        p, cfg = self.cfg.profile, self.cfg
        if isinstance(outcome, Delivered):
            spi = spi_for(p, cfg.inbound.spi, outcome.sub_sa)
            self.say(f"DELIVER spi={spi:#010x} seq={_num(outcome.seq)} "
                     f"sub_sa={outcome.sub_sa}")
            payload = outcome.payload
            if not self._tunnel:
                payload = ip_packet(cfg.tunnel_peer, cfg.tunnel_local, outcome.next_header,
                                    payload)
            try:
                os.write(self.tun, payload)
            except OSError as e:
                self.say(f"TUN-WRITE-FAILED errno={errno.errorcode.get(e.errno, e.errno)}")
            return
        spi = self._peek_spi(data)
        self.say(f"DROP spi={'-' if spi is None else f'{spi:#010x}'} seq={_num(outcome.seq)} "
                 f"reason={outcome.reason.value} requirement={outcome.requirement or '-'}")

    # --- control ---------------------------------------------------------------------------
    def on_control(self) -> None:
        """Read what stdin has; answer every whole line."""
        try:
            chunk = os.read(self.control.fileno(), 4096)
        except (BlockingIOError, InterruptedError):
            return
        if not chunk:
            self.control = None                    # end of stdin: no more control
            return
        self._control_buf += chunk
        *lines, self._control_buf = self._control_buf.split(b"\n")
        for raw in lines:
            line = raw.decode("ascii", "replace").strip()
            if line:
                self.say(self.command(line), must=True)

    def command(self, line: str) -> str:
        """The answer to one control line (``OK ...`` or ``ERROR ...: why``)."""
        words = line.split()
        p = self.cfg.profile
        try:
            args = [int(w, 0) for w in words[1:]]
        except ValueError:
            return f"ERROR {line}: arguments are integers"
        verb = words[0].upper()
        if verb == "SUB-SA" and len(args) == 1:
            if not 0 <= args[0] < p.n_sub_sas:
                return f"ERROR {line}: the profile has {p.n_sub_sas} sub-SAs"
            self.fixed_sub_sa = args[0]
            return f"OK {line}"
        if verb == "SET-COUNTER" and len(args) == 2:
            try:
                self.sender.set_counter(args[0], args[1])
            except (EspSpecError, ValueError, IndexError) as e:
                return f"ERROR {line}: {_word(str(e))}"
            return f"OK {line}"
        if verb == "COUNTERS" and not args:
            return "OK COUNTERS " + " ".join(str(c) for c in self.sender.counters)
        return f"ERROR {line}: unknown (SUB-SA K, SET-COUNTER K V, COUNTERS)"

    def _peek_spi(self, data: bytes) -> int | None:
        try:
            return self.receiver.codec.decode(data).spi
        except Exception:
            return None

    def loop(self) -> None:
        tun, sock, wake = self.tun, self.sock, self._wake_r
        if self.control is not None:
            os.set_blocking(self.control.fileno(), False)
        while True:
            watched = [tun, sock, wake] + ([self.control] if self.control is not None else [])
            try:
                ready = select.select(watched, [], [])[0]
            except InterruptedError:
                ready = []
            if self.signals or wake in ready:
                try:
                    while wake.recv(64):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
                pending, self.signals = self.signals, []
                if signal.SIGTERM in pending or signal.SIGINT in pending:
                    return
                if signal.SIGHUP in pending:
                    self.rekey()
                continue
            if self.control is not None and self.control in ready:
                self.on_control()
            if tun in ready:
                for _ in range(64):
                    try:
                        packet = os.read(tun, MAX_DATAGRAM)
                    except (BlockingIOError, InterruptedError):
                        break
                    self.outbound(packet)
            if sock in ready:
                for _ in range(64):
                    try:
                        data = sock.recv(MAX_DATAGRAM)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:        # an ICMP error queued on the socket
                        continue
                    self.inbound(data)

    def run(self) -> int:
        try:
            cfg = read(self.sa_path)
            self.install(cfg)
        except EspSpecError as e:
            self.complain(str(e).splitlines()[0])
            return EXIT_BAD_SA_FILE
        self._install_signals()
        try:
            try:
                self.setup()
            except SetupError as e:
                self.complain(str(e))
                return EXIT_SETUP
            if self.signals and any(s != signal.SIGHUP for s in self.signals):
                return 0                   # told to stop while setting up
            self.say(f"READY generation={cfg.generation}", must=True)
            self.loop()
            return 0
        finally:
            self.close()
            signal.set_wakeup_fd(-1)


def _num(v: int | None) -> str:
    return "-" if v is None else str(v)


def _word(text: str) -> str:
    return "-".join(text.split())[:80] or "-"


def main(sa_path: str, sub_sa: int | None = None, control: bool = False,
         sender_class: type = Sender, receiver_class: type = Receiver) -> int:
    return ReferenceDaemon(sa_path, sub_sa=sub_sa,
                           control=sys.stdin.buffer if control else None,
                           sender_class=sender_class, receiver_class=receiver_class).run()
