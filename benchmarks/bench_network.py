"""What a packet costs over the network (a TUN daemon behind a relay) against in-process.

For 64-byte payloads, per packet, protect (``Session.iut_send``, judged) and unprotect
(``Session.peer_send`` + ``Session.deliver``, judged), each path in one run, down from the
physical floor:

* floor: a bare AES-GCM seal and open through ``cryptography`` (no model, no ESP);
* the model alone: ``spec_model`` ``Sender.seal`` / ``Receiver.open``;
* ``ReferenceIut`` through a ``Session``, in-process and behind ``Isolated``;
* the reference daemon (``reference_daemon``) over the network, its factory called in this
  process and behind ``Isolated`` (as ``espspec run`` does);
* strongSwan (``strongswan``) over the network, when charon is installed and we are root;
* DPDK's ipsec-secgw (``dpdk``) over the network, when it builds and we are root (its
  unprotect includes the fence packet behind every injected one).

Then the time to set up a session (``Session.open``: a new SA file and SIGHUP for the
daemon, a new CHILD_SA for strongSwan, a restart with a new file for ipsec-secgw), the
first one (a cold start) and the median of
the next ones, and where the network cost of the in-process daemon goes: the relay hop
and the injection are measured on its own rig with plain UDP sockets, without the daemon,
beside the relay's parsing of one frame and a bare thread and process hand-off (a one-byte
ping-pong). Each figure is the median of REPEATS timed runs after a warm-up; the machine's
other load shows in the network rows. Prints figures; asserts nothing. Every rig, worker
and namespace is gone at the end (``close_rigs`` in a ``finally``), and the last line says
whether any namespace of a finished run is left.

Run: python benchmarks/bench_network.py [--packets N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from harness.adapters.reference import ReferenceIut  # noqa: E402
from harness.adapters.tun_daemon import close_rigs, reference_daemon  # noqa: E402
from harness.engine.isolation import Isolated, shutdown_all  # noqa: E402
from harness.engine.session import Session, make_payload, sa_pair  # noqa: E402
from harness.net.topology import close_all  # noqa: E402
from spec_model import Receiver, Sender, named  # noqa: E402
from spec_model.aead import AEADS  # noqa: E402

SIZE = 64                    # payload bytes (make_payload: in tunnel mode, plus an IP header)
N = 2000                     # packets per row and direction, over all repeats
REPEATS = 5
INSTALLS = 20                # sessions opened for the median set-up time
CHEAP = 10                   # rows without I/O time this many times more packets
CHARON = "/usr/lib/ipsec/charon"


def _per_call(fn, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def _rounds(fns, n: int) -> list[list[float]]:
    """µs per call of each of ``fns``, one figure per repeat: a warm-up, then REPEATS
    rounds in which each is called n // REPEATS times in turn (so that figures meant to
    be compared are timed under the same load)."""
    per = max(1, n // REPEATS)
    for _ in range(max(20, per // 10)):
        for fn in fns:
            fn()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(REPEATS):
        for fn, figures in zip(fns, out):
            figures.append(_per_call(fn, per))
    return out


def _measure(protect, unprotect, n: int) -> tuple[float, float]:
    """Median µs per packet of each, over REPEATS rounds."""
    ps, us = _rounds([protect, unprotect], n)
    return statistics.median(ps), statistics.median(us)


# --- the rows without I/O ----------------------------------------------------------------
def floor(n: int) -> tuple[float, float]:
    """Bare AES-GCM over the plaintext an ESP packet of this payload carries."""
    profile = named("esp")
    aead = AEADS[profile.aead]
    out, _ = sa_pair(profile, "bench/network/floor", 0)
    payload, nh = make_payload(profile, SIZE)
    wire = Sender(profile, out.keymat, out.spi).seal(0, payload, nh).wire
    plaintext = bytes(len(wire) - 16 - aead.icv_len)        # SPI, SN, IV, ICV off
    key, salt = out.keymat[:aead.key_len], out.keymat[aead.key_len:]
    cipher = AESGCM(key)
    total = n + max(20, n // REPEATS // 10) + REPEATS
    nonces = [salt + i.to_bytes(8, "big") for i in range(total)]
    aads = [out.spi.to_bytes(4, "big") + i.to_bytes(4, "big") for i in range(total)]
    sealed = [cipher.encrypt(nonces[i], plaintext, aads[i]) for i in range(total)]
    it_seal, it_open = iter(range(total)), iter(range(total))

    def seal():
        i = next(it_seal)
        cipher.encrypt(nonces[i], plaintext, aads[i])

    def open_():
        i = next(it_open)
        cipher.decrypt(nonces[i], sealed[i], aads[i])
    return _measure(seal, open_, n)


def model(profile_name: str, n: int) -> tuple[float, float]:
    profile = named(profile_name)
    out, inb = sa_pair(profile, "bench/network/model", 0)
    payload, nh = make_payload(profile, SIZE)
    peer_payload, peer_nh = make_payload(profile, SIZE, fill=0x5A)
    total = n + max(20, n // REPEATS // 10) + REPEATS
    peer = Sender(profile, inb.keymat, inb.spi)
    wires = iter([peer.seal(0, peer_payload, peer_nh).wire for _ in range(total)])
    tx = Sender(profile, out.keymat, out.spi)
    rx = Receiver(profile, inb.keymat, inb.spi)
    return _measure(lambda: tx.seal(0, payload, nh), lambda: rx.open(next(wires)), n)


# --- the rows through a Session ----------------------------------------------------------
def _open(factory, profile, label: str) -> tuple[Session, float]:
    t = time.perf_counter()
    s = Session.open(factory, profile, label=label)
    return s, time.perf_counter() - t


def session_row(factory, profile_name: str, name: str, n: int, installs: int = 0,
                probes=None) -> tuple[list[list[float]], tuple[float, float] | None]:
    """Per-packet figures on one session, per round: protect, unprotect, then whatever
    ``probes(session)`` adds (a list of calls timed in the same rounds, and a function
    that ends them); with ``installs``, the set-up times too (the first session's, and
    the median of ``installs`` more sessions')."""
    profile = named(profile_name)
    s, cold = _open(factory, profile, f"bench/network/{name}#0")
    try:
        def unprotect():
            s.peer_send(0, SIZE)
            s.deliver(0)
        extra, done = probes(s) if probes is not None else ([], lambda: None)
        try:
            rounds = _rounds([lambda: s.iut_send(0, SIZE), unprotect, *extra], n)
        finally:
            done()
    finally:
        s.close()
    setup = None
    if installs:
        times = []
        for i in range(1, installs + 1):
            s, t = _open(factory, profile, f"bench/network/{name}#{i}")
            times.append(t)
            s.close()
        setup = (cold, statistics.median(times))
    return rounds, setup


def _medians(rounds: list[list[float]]) -> tuple[float, float]:
    return statistics.median(rounds[0]), statistics.median(rounds[1])


# --- where the network cost goes ---------------------------------------------------------
def wire_probes(s: Session):
    """For ``session_row``: on the in-process daemon's rig, without the daemon, two calls.
    up: an ESP packet sent from a UDP socket in end a, seen by the relay thread and handed
    to the caller by ``next_esp`` (what protect waits on once the daemon has sent). down:
    a frame injected toward end a by the relay's AF_PACKET socket and read from a UDP
    socket there (what unprotect costs before the daemon reads)."""
    rig = s.iut.rig_
    topo, relay = rig.topology, rig.relay
    data = s.judge.peer.seal(0, *make_payload(s.profile, SIZE, fill=0x5A)).wire
    sock = topo.udp_socket("a", 0)
    sock.settimeout(1.0)
    peer = (topo.ends["b"].address, rig.port)
    frame = topo.udp_frame("b", rig.port, sock.getsockname()[1], data)

    def up():
        sock.sendto(data, peer)
        relay.next_esp("a", 1.0)

    def down():
        relay.inject("a", frame)
        sock.recv(65536)
    return [up, down], sock.close


def relay_parse(n: int) -> float:
    """µs the relay thread spends parsing one ESP-in-UDP frame of this size (its layout,
    checksums and ESP offset), with no I/O."""
    from harness.net.frames import checksums_ok, esp_offset, layout, udp_frame
    profile = named("esp")
    out, _ = sa_pair(profile, "bench/network/parse", 0)
    wire = Sender(profile, out.keymat, out.spi).seal(0, *make_payload(profile, SIZE)).wire
    frame = udp_frame("02:00:00:00:00:01", "02:00:00:00:00:02", "192.0.2.1", "192.0.2.2",
                      4500, 4500, wire)

    def parse():
        lay = layout(frame)
        checksums_ok(frame, lay)
        esp_offset(frame, lay)
    return _measure(parse, lambda: None, n)[0]


def wakeups(n: int) -> tuple[float, float]:
    """µs per hop of a one-byte ping-pong: to a blocked thread of this process (two pipes),
    to another process (a socket pair, a forked echo): what each hand-off on the network
    path costs on this machine before any work is done. Run before any rig exists (no
    thread is forked along)."""
    import socket
    import threading
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()

    def echo() -> None:
        while os.read(r1, 1) == b"x":
            os.write(w2, b"x")
    t = threading.Thread(target=echo, daemon=True)
    t.start()

    def thread_hop():
        os.write(w1, b"x")
        os.read(r2, 1)
    thread = _measure(thread_hop, lambda: None, n)[0]
    os.write(w1, b"q")
    t.join(1.0)
    for fd in (r1, w1, r2, w2):
        os.close(fd)

    a, b = socket.socketpair()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:                                    # the echo; never returns
        try:
            a.close()
            while (got := b.recv(1)) == b"x":
                b.send(got)
        finally:
            os._exit(0)
    b.close()

    def process_hop():
        a.send(b"x")
        a.recv(1)
    try:
        process = _measure(process_hop, lambda: None, n)[0]
    finally:
        a.close()                                   # EOF: the echo exits
        os.waitpid(pid, 0)
    return thread / 2, process / 2


# --- printing ----------------------------------------------------------------------------
def _row(path: str, figures: tuple[float, float], base: float) -> None:
    p, u = figures
    pps = 2e6 / (p + u)
    print(f"  {path:50} {p:10.1f} {u:10.1f} {pps:11,.0f} {(p + u) / base:8.1f}")


def _can_network() -> str | None:
    if os.geteuid() != 0:
        return "not root: network namespaces need CAP_SYS_ADMIN"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    return None


def _can_strongswan() -> str | None:
    if not os.path.exists(CHARON):
        return f"{CHARON} does not exist"
    return _can_network()


def _namespaces_left() -> list[str]:
    """espspec namespaces whose run is gone (this one's workers included) or is this one."""
    from harness.net import leftovers
    return [left.name for left in leftovers.find()
            if left.kind == "namespace" and not left.owner_alive]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=N,
                    help=f"packets per row and direction, over {REPEATS} repeats "
                         f"(default {N}; rows without I/O use {CHEAP}x as many)")
    n = ap.parse_args().packets
    started = time.perf_counter()
    rows: list[tuple[str, tuple[float, float]]] = []
    setups: list[tuple[str, tuple[float, float]]] = []
    skipped: list[str] = []
    isolated: list[Isolated] = []
    no_net, no_swan = _can_network(), _can_strongswan()
    probes = None
    try:
        hops = wakeups(n)
        parse = relay_parse(n * CHEAP)
        rows.append(("floor: AES-GCM (cryptography), no model", floor(n * CHEAP)))
        for prof in ("esp", "eesp-v0"):
            rows.append((f"{prof:7} model alone (Sender/Receiver)", model(prof, n * CHEAP)))
            rows.append((f"{prof:7} reference, in-process", _medians(session_row(
                ReferenceIut, prof, f"ref-{prof}", n * CHEAP)[0])))
            iso = Isolated(ReferenceIut, timeout=10)
            isolated.append(iso)
            rows.append((f"{prof:7} reference, isolated", _medians(session_row(
                iso, prof, f"ref-iso-{prof}", n)[0])))
            iso.shutdown()
            if no_net:
                skipped.append(f"{prof} reference daemon: {no_net}")
                continue
            rounds, setup = session_row(reference_daemon, prof, f"daemon-{prof}", n,
                                        INSTALLS, wire_probes if prof == "esp" else None)
            rows.append((f"{prof:7} reference daemon, network, in-process", _medians(rounds)))
            setups.append((f"{prof:7} reference daemon, in-process (SA file + SIGHUP)", setup))
            if prof == "esp":
                probes = rounds
            # the rig lives in the process that made it: a worker forked while this
            # process holds one would inherit it (and its daemon), so it goes first
            close_rigs()
            iso = Isolated(reference_daemon, timeout=10)
            isolated.append(iso)
            rounds, setup = session_row(iso, prof, f"daemon-iso-{prof}", n, INSTALLS)
            rows.append((f"{prof:7} reference daemon, network, isolated", _medians(rounds)))
            setups.append((f"{prof:7} reference daemon, isolated (SA file + SIGHUP)", setup))
            iso.shutdown()
        if no_swan:
            skipped.append(f"strongSwan: {no_swan}")
        else:
            from harness.adapters.strongswan import strongswan
            try:
                rounds, setup = session_row(strongswan, "esp", "strongswan", n, INSTALLS)
            except Exception as e:  # noqa: BLE001 -- a rig that cannot start is a skip
                skipped.append(f"strongSwan: {type(e).__name__}: {e}")
            else:
                rows.append(("esp     strongSwan (libipsec), network, in-process",
                             _medians(rounds)))
                setups.append(("esp     strongSwan, in-process (a new CHILD_SA)", setup))
        from harness.dpdk import BinaryMissing, build_binary
        try:
            no_dpdk = no_net or (build_binary() and None)
        except BinaryMissing as e:
            no_dpdk = str(e)
        if no_dpdk:
            skipped.append(f"DPDK: {no_dpdk}")
        else:
            from harness.adapters.dpdk import dpdk
            rounds, setup = session_row(dpdk, "esp", "dpdk", n, INSTALLS)
            rows.append(("esp     DPDK ipsec-secgw, network, in-process", _medians(rounds)))
            setups.append(("esp     DPDK ipsec-secgw, in-process (restart, new SA file)",
                           setup))
            close_rigs()
    finally:
        for iso in isolated:
            iso.shutdown()
        shutdown_all()
        close_rigs()
        close_all()
    elapsed = time.perf_counter() - started

    base = sum(rows[0][1])
    print(f"per packet, {SIZE}-byte payloads, judged through a Session where one is named; "
          f"{n:,} packets per row and direction ({n * CHEAP:,} without I/O), median of "
          f"{REPEATS} runs:")
    print(f"  {'path':50} {'protect':>10} {'unprotect':>10} {'packets/s':>11} "
          f"{'x floor':>8}")
    print(f"  {'':50} {'µs/pkt':>10} {'µs/pkt':>10}")
    for path, figures in rows:
        _row(path, figures, base)
    print("  packets/s: one protected and one unprotected packet in turn, 2 / (protect + "
          "unprotect)")
    print("  x floor: (protect + unprotect) / the floor's (AES-128-GCM on esp's plaintext; "
          "eesp-v0 uses the same AEAD)")
    for why in skipped:
        print(f"  skipped: {why}")
    if setups:
        print(f"set-up of a session (Session.open: constructor, capabilities, install), "
              f"the first one and the median of the next {INSTALLS}:")
        for path, (cold, warm) in setups:
            print(f"  {path:58} first {cold * 1e3:8.1f} ms   then {warm * 1e3:7.2f} ms")

    by = dict(rows)
    net = by.get("esp     reference daemon, network, in-process")
    if net is not None and probes is not None:
        med = statistics.median
        mdl, ref = by["esp     model alone (Sender/Receiver)"], by["esp     reference, in-process"]
        iso = by["esp     reference daemon, network, isolated"]
        ref_iso = by["esp     reference, isolated"]
        p_r, u_r, up_r, down_r = probes
        judge = (ref[0] - mdl[0], ref[1] - mdl[1])
        # the daemon's share from the rounds the wire was timed in (paired, then median)
        beyond = (med(p - w for p, w in zip(p_r, up_r)), med(u - w for u, w in zip(u_r, down_r)))
        parts = [
            ("session + judge (reference in-process - model alone)", judge),
            ("wire: UDP a -> relay thread -> next_esp / inject -> a",
             (med(up_r), med(down_r))),
            ("TUN I/O, the daemon (loop, model), event lines",
             (beyond[0] - judge[0], beyond[1] - judge[1])),
        ]
        print("where the network cost goes (esp, reference daemon in-process), µs/pkt "
              "(the wire timed in the same rounds):")
        print(f"  {'':58} {'protect':>8} {'unprotect':>10}")
        for what, (p, u) in parts:
            print(f"  {what:58} {p:8.1f} {u:10.1f}")
        print(f"  {'  of which the model (model alone)':58} {mdl[0]:8.1f} {mdl[1]:10.1f}")
        print(f"  {'= reference daemon, network, in-process':58} {net[0]:8.1f} {net[1]:10.1f}")
        print(f"  {'isolation, daemon rows: isolated - in-process':58} "
              f"{iso[0] - net[0]:8.1f} {iso[1] - net[1]:10.1f}")
        print(f"  {'isolation, reference rows: isolated - in-process':58} "
              f"{ref_iso[0] - ref[0]:8.1f} {ref_iso[1] - ref[1]:10.1f}")
        print("  (parts are differences of medians; rows timed apart differ by the machine's "
              "other load too)")
        print("  protect: AF_PACKET sendto into the TUN; the daemon's select loop wakes, reads, "
              "seals, sends UDP; the relay")
        print("  thread wakes, parses the frame, queues it; the caller wakes in next_esp. "
              "unprotect: AF_PACKET inject; the")
        print("  daemon wakes on UDP, opens, writes a DELIVER line to its stdout and the "
              "payload into the TUN; the line")
        print("  watcher thread and the caller (select on the TUN and the watcher) wake. "
              f"A bare hand-off costs {hops[0]:.0f} µs to a")
        print(f"  thread, {hops[1]:.0f} µs to a process (one-byte ping-pong), and the relay "
              f"parses a frame in {parse:.0f} µs: so most of the")
        print(f"  rest is Python work in the daemon, threads handing the caller's GIL over, "
              f"and waiting for one of {os.cpu_count()} CPUs.")
    print(f"whole run {elapsed:.1f} s")
    left = _namespaces_left()
    print(f"network namespaces left by this run or a finished one: "
          f"{', '.join(left) if left else 'none'}")


if __name__ == "__main__":
    main()
