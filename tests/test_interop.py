"""suites.interop and ``espspec interop``: strongSwan (charon, kernel-libipsec) and the
reference daemon exchange ESP both ways, and the model judges every packet.

Theory of operation: five real runs, each on its own topology (about 1 s each). One
through ``suites.interop.run`` whose result the tests look into: both directions PASS,
at least 20 packets each way, IPv4 and IPv6 inner packets (seen by opening the relay's
own frames with the model again), every PID and the namespaces gone. One through the
command line with ``--report``: exit 0, two PASS lines, the JSON, the pcap and the
esp_sa table. Two that prove the judging can fail, one per direction: the daemon seals
b->a under a wrong key (through the command line: exit 1, every b->a packet fails the
model's ICV check, a->b still passes), or opens a->b under a wrong key (the model opens
every packet, the daemon delivers none: RECV-ACCEPT-VALID with the daemon's own DROP
line; b->a still passes). And one whose daemon cannot start: one line, nothing left.
The real runs are skipped only when charon or the vici package is missing, or when not
root, and say which. ``judge`` is pure, so its other findings are tested on packets the
model seals, without a network; so is bad input (one line, exit 2, before any namespace
exists). "Nothing left" means nothing of this process: other runs may share the host.
"""

from __future__ import annotations

import importlib.util
import json
import os
import struct
from dataclasses import replace

import pytest

from harness.cli import main
from harness.net import procs
from harness.strongswan.rig import CHARON
from spec_model import Delivered, Receiver, Sender
from suites import interop
from suites.interop import (A_TO_B, B_TO_A, BadPacketCount, BadPacketSize, BadWindow,
                            DaemonFailed, InteropConfig, UnknownAead, judge, plaintexts,
                            profile_for)

from .needs import secgw_missing

_MISSING = [why for missing, why in (
    (not os.access(CHARON, os.X_OK), f"strongSwan's charon ({CHARON}) is not installed "
     f"(Debian: strongswan-charon libcharon-extra-plugins)"),
    (importlib.util.find_spec("vici") is None, "the vici Python package is not installed"),
    (os.geteuid() != 0, "network namespaces need root"),
) if missing]
real = pytest.mark.skipif(bool(_MISSING), reason="; ".join(_MISSING) or "-")

N = 24
PROFILE = profile_for("aes128gcm16")


def _ours() -> set[str]:
    """The namespaces this process made that still exist."""
    out = procs.run(["ip", "netns", "list"]).stdout
    mine = f"espspec-{os.getpid()}-"
    return {line.split()[0] for line in out.splitlines() if line.startswith(mine)}


def _flip(spec):
    return replace(spec, keymat=bytes([spec.keymat[0] ^ 1]) + spec.keymat[1:])


def _flip_outbound(sa):
    """The daemon seals b->a with a key one bit off from the one charon A expects."""
    return replace(sa, outbound=_flip(sa.outbound))


def _flip_inbound(sa):
    """The daemon opens a->b with a key one bit off from the one charon A seals with."""
    return replace(sa, inbound=_flip(sa.inbound))


@pytest.fixture(scope="module")
def result():
    return interop.run(InteropConfig(packets=N))


# --- the real thing ------------------------------------------------------------------------
@real
def test_both_directions_pass(result):
    assert result.passed, [str(f) for d in result.directions for f in d.findings]
    for d in result.directions:
        assert (d.written, d.on_wire, d.opened, d.delivered) == (N, N, N, N), d
        assert d.verdict == "PASS" and not d.findings
    assert [d.direction for d in result.directions] == [A_TO_B, B_TO_A]
    assert result.direction(A_TO_B).spi == result.out_spi
    assert result.direction(B_TO_A).spi == result.in_spi
    assert result.versions["strongswan"].startswith("strongSwan 5.")
    assert len(result.frames) == 2 * N


@real
def test_inner_packets_were_ipv4_and_ipv6_both_ways(result):
    """Opened again from the relay's own frames: each way, SNs 1..N, both IP versions,
    and exactly the plaintexts the case wrote."""
    for side, spi, keymat, from_peer in (("a", result.out_spi, result.out_keymat, False),
                                         ("b", result.in_spi, result.in_keymat, True)):
        rx = Receiver(result.profile, keymat, spi)
        frames = [f for s, f in result.frames if s == side]
        opened = []
        for frame in frames:
            esp = frame[14 + 20 + 8:]               # Ethernet, IPv4, UDP 4500
            out = rx.open(esp)
            assert isinstance(out, Delivered), out
            opened.append(out)
        assert [o.seq for o in opened] == list(range(1, N + 1))
        assert {o.payload[0] >> 4 for o in opened} == {4, 6}
        assert {o.next_header for o in opened} == {4, 41}
        assert [o.payload for o in opened] == plaintexts(result.profile, N,
                                                         from_peer=from_peer)


@real
def test_nothing_is_left(result):
    assert set(result.pids) == {"charon-a", "charon-b", "reference-daemon"}
    assert all(procs.gone(pid) for pid in result.pids.values()), result.pids
    left = procs.run(["ip", "netns", "list"]).stdout
    assert result.prefix not in left
    assert not os.path.exists(result.workdir)


@real
def test_cli_report(tmp_path, capsys):
    before = _ours()
    folder = tmp_path / "report"
    assert main(["interop", "strongswan", "reference-daemon", "--packets", "20",
                 "--report", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("a->b strongswan -> reference-daemon: PASS (20 written")
    assert lines[1].startswith("b->a reference-daemon -> strongswan: PASS (20 written")
    doc = json.loads((folder / "interop.json").read_text())
    assert doc["verdict"] == "PASS"
    assert [d["verdict"] for d in doc["directions"]] == ["PASS", "PASS"]
    assert doc["directions"][0]["counts"]["delivered"] == 20
    assert doc["implementations"]["a"]["version"].startswith("strongSwan 5.")
    assert doc["implementations"]["b"]["version"].startswith("espspec ")
    pcap = (folder / "interop.pcap").read_bytes()
    assert struct.unpack_from("<I", pcap)[0] == 0xA1B2C3D4
    records, at = 0, 24
    while at < len(pcap):
        records += 1
        at += 16 + struct.unpack_from("<I", pcap, at + 8)[0]
    assert records == 40
    sa_lines = [line for line in (folder / "esp_sa").read_text().splitlines()
                if not line.startswith("#")]
    assert len(sa_lines) == 2
    assert sa_lines[0].startswith('"IPv4","192.0.2.10","198.51.100.10","0x')
    assert _ours() == before


@real
def test_a_wrong_key_is_found_in_its_direction_only(tmp_path, capsys, monkeypatch):
    """The daemon seals b->a under a wrong key: every b->a packet fails the model's ICV
    check (and charon delivers none), a->b is untouched; exit 1."""
    before = _ours()
    real_run = interop.run
    monkeypatch.setattr(interop, "run", lambda cfg, pair: real_run(
        replace(cfg, daemon_sa=_flip_outbound), pair))
    folder = tmp_path / "report"
    assert main(["interop", "strongswan", "reference-daemon", "--packets", "20",
                 "--report", str(folder)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("a->b strongswan -> reference-daemon: PASS")
    assert lines[1].startswith("b->a reference-daemon -> strongswan: FAIL, 20 findings")
    assert "first: packet 1: ICV-VERIFY: the model drops it" in lines[1]
    doc = json.loads((folder / "interop.json").read_text())
    a_b, b_a = doc["directions"]
    assert doc["verdict"] == "FAIL" and a_b["verdict"] == "PASS" and not a_b["findings"]
    assert b_a["counts"] == {"written": 20, "on_wire": 20, "opened": 0, "delivered": 0,
                             "findings": 20}
    assert [(f["packet"], f["requirement"]) for f in b_a["findings"]] == \
        [(k, "ICV-VERIFY") for k in range(1, 21)]
    assert _ours() == before


@real
def test_a_receiver_that_cannot_open_is_found():
    """The daemon opens a->b under a wrong key: the model opens every a->b packet, the
    daemon delivers none (RECV-ACCEPT-VALID, with its own DROP line); b->a passes."""
    r = interop.run(InteropConfig(packets=20, daemon_sa=_flip_inbound))
    a_b, b_a = r.direction(A_TO_B), r.direction(B_TO_A)
    assert b_a.passed and not a_b.passed
    assert (a_b.on_wire, a_b.opened, a_b.delivered) == (20, 20, 0)
    assert [(f.packet, f.requirement) for f in a_b.findings] == \
        [(k, "RECV-ACCEPT-VALID") for k in range(1, 21)]
    assert "reference-daemon: DROP" in a_b.findings[0].detail
    assert "reason=icv" in a_b.findings[0].detail
    assert all(procs.gone(pid) for pid in r.pids.values())


@real
def test_a_daemon_that_fails_to_start_leaves_nothing():
    before = _ours()
    with pytest.raises(DaemonFailed, match=r"exited with status 2: .*interface"):
        interop.run(InteropConfig(packets=20, ready_timeout=5.0,
                                  daemon_sa=lambda sa: replace(sa, interface="bad/name")))
    assert _ours() == before
    assert not [d for d in os.listdir("/tmp") if d.startswith(f"espspec-{os.getpid()}-")]


# --- DPDK's ipsec-secgw against the reference daemon: raw ESP ------------------------------
@pytest.fixture(scope="module")
def dpdk_result():
    why = secgw_missing()
    if why:
        pytest.skip(why)
    return interop.run(InteropConfig(packets=N), ("dpdk", "reference-daemon"))


def test_dpdk_both_directions_pass_in_raw_esp(dpdk_result):
    r = dpdk_result
    assert r.passed, [str(f) for d in r.directions for f in d.findings]
    for d in r.directions:
        assert (d.written, d.on_wire, d.opened, d.delivered) == (N, N, N, N), d
    assert [(d.sender, d.receiver) for d in r.directions] == [
        ("dpdk", "reference-daemon"), ("reference-daemon", "dpdk")]
    assert r.versions["dpdk"].startswith("DPDK 22.11")
    assert r.to_json()["implementations"]["a"]["name"] == "dpdk"
    for side, spi, keymat, from_peer in (("a", r.out_spi, r.out_keymat, False),
                                         ("b", r.in_spi, r.in_keymat, True)):
        rx = Receiver(r.profile, keymat, spi)
        frames = [f for s, f in r.frames if s == side]
        assert frames and all(f[14 + 9] == 50 for f in frames)     # IP protocol 50
        opened = [rx.open(f[14 + 20:]) for f in frames]
        assert [o.seq for o in opened] == list(range(1, N + 1)), opened
        assert [o.payload for o in opened] == plaintexts(r.profile, N, from_peer=from_peer,
                                                         v6=False)
    assert set(r.pids) == {"dpdk", "reference-daemon"}
    assert all(procs.gone(pid) for pid in r.pids.values())
    assert r.prefix not in procs.run(["ip", "netns", "list"]).stdout
    assert not os.path.exists(r.workdir)


def test_dpdk_a_wrong_key_at_the_daemon_is_found():
    """The daemon opens a->b under a wrong key: the model opens what ipsec-secgw sent,
    the daemon delivers none (RECV-ACCEPT-VALID with its DROP line); b->a passes."""
    why = secgw_missing()
    if why:
        pytest.skip(why)
    r = interop.run(InteropConfig(packets=10, daemon_sa=_flip_inbound),
                    ("dpdk", "reference-daemon"))
    a_b, b_a = r.direction(A_TO_B), r.direction(B_TO_A)
    assert b_a.passed and (a_b.on_wire, a_b.opened, a_b.delivered) == (10, 10, 0)
    assert [(f.packet, f.requirement) for f in a_b.findings] == \
        [(k, "RECV-ACCEPT-VALID") for k in range(1, 11)]
    assert "reason=icv" in a_b.findings[0].detail


# --- judging, without a network ------------------------------------------------------------
SPI, KEY = 0x1234_5678, bytes(range(20))


def _judge(written, wire, delivered, **kw):
    return judge(A_TO_B, "strongswan", "reference-daemon", PROFILE, SPI, KEY, written,
                 wire, delivered, **kw)


def _sealed(count: int, skip_at: int | None = None):
    tx = Sender(PROFILE, KEY, SPI)
    written, wire = plaintexts(PROFILE, count), []
    for k, p in enumerate(written, 1):
        if k == skip_at:
            tx.set_counter(0, k)                  # SN k + 1 next: SN k never sent
        wire.append(tx.seal(0, p).wire)
    return written, wire


def test_judge_passes_a_clean_exchange():
    written, wire = _sealed(6)
    d = _judge(written, wire, list(written))
    assert d.passed and (d.opened, d.delivered) == (6, 6)


def test_judge_sequence_numbers():
    written, wire = _sealed(4, skip_at=3)
    found = {(f.packet, f.requirement) for f in _judge(written, wire, list(written)).findings}
    assert found == {(3, "INTEROP-SN-GAP")}
    written, wire = _sealed(3)
    found = [(f.packet, f.requirement) for f in
             _judge(written, [wire[0], wire[0], wire[2]], list(written)).findings]
    assert (2, "SEQ-STRICTLY-INCREASING") in found
    assert (2, "INTEROP-PLAINTEXT") not in found      # a replay: the SN finding says it
    found = [(f.packet, f.requirement) for f in _judge(written[1:], wire[1:],
                                                       list(written[1:])).findings]
    assert found[0] == (1, "SEQ-FIRST-ONE")


def test_judge_plaintexts_and_deliveries():
    written, wire = _sealed(3)
    other = plaintexts(PROFILE, 4)[3]
    d = _judge([written[0], other, written[2]], wire, [written[0], written[0], b"\x45junk"])
    found = [(f.packet, f.requirement) for f in d.findings]
    assert (2, "INTEROP-PLAINTEXT") in found           # sealed something else
    assert (1, "INTEROP-DUPLICATE-DELIVERY") in found
    assert (None, "INTEROP-UNEXPECTED-DELIVERY") in found
    assert (3, "RECV-ACCEPT-VALID") in found            # opened by the model, not delivered
    forged = wire[1][:-1] + bytes([wire[1][-1] ^ 1])
    d = _judge(written, [wire[0], forged, wire[2]], list(written))
    assert [(f.packet, f.requirement) for f in d.findings] == [(2, "ICV-VERIFY"),
                                                               (2, "ICV-VERIFY")]
    assert "delivered it, yet the model drops it" in d.findings[1].detail


def test_judge_unsent_and_unexpected_esp():
    written, wire = _sealed(3)
    d = _judge(written, wire[:1], written[:1], unsent=2, send_timeout=2.0)
    assert [(f.packet, f.requirement) for f in d.findings] == [(2, "INTEROP-NOT-SENT")]
    d = _judge(written[:2], wire, written[:2])
    assert [(f.packet, f.requirement) for f in d.findings] == [(3, "INTEROP-UNEXPECTED-ESP")]
    d = judge(B_TO_A, "reference-daemon", "strongswan", PROFILE, SPI + 1, KEY, written,
              wire, written)
    assert {f.requirement for f in d.findings} == {"INTEROP-SPI"}


# --- bad input: one line, exit 2, nothing started ------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["strongswan", "libreswan"], "interop runs strongswan (end a) against reference-daemon"),
    (["reference-daemon", "strongswan"], "not reference-daemon against strongswan"),
    (["strongswan", "dpdk"], "strongswan and dpdk: no profile both speak: strongSwan 5.9.8's "
                             "kernel-libipsec sends and takes ESP in UDP only"),
    (["dpdk", "reference-daemon", "--aead", "aes128gcm12"], "ipsec-secgw has no such AEAD"),
    (["strongswan", "reference-daemon", "--packets", "0"], "--packets 0: expected 1..1280"),
    (["strongswan", "reference-daemon", "--packets", "many"], "invalid int value"),
    (["strongswan", "reference-daemon", "--aead", "rot13"], "--aead rot13: unknown"),
])
def test_bad_input_is_one_line(argv, words, capsys):
    before = _ours() if os.geteuid() == 0 else set()
    try:
        code = main(["interop", *argv])
    except SystemExit as e:                  # argparse's own errors exit from the parser
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err
    assert (_ours() if os.geteuid() == 0 else set()) == before


def test_report_folder_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["interop", "strongswan", "reference-daemon", "--report", str(f)]) == 2
    err = capsys.readouterr().err
    assert "exists and is not a folder" in err and err.count("\n") == 1


def test_config_errors():
    with pytest.raises(BadPacketCount):
        InteropConfig(packets=interop.MAX_PACKETS + 1)
    with pytest.raises(UnknownAead):
        InteropConfig(aead="aes128gcm17")
    with pytest.raises(BadPacketSize):
        InteropConfig(sizes=(64, interop.MAX_INNER + 1))
    with pytest.raises(BadWindow):
        InteropConfig(window=0)
    assert len(set(plaintexts(PROFILE, interop.MAX_PACKETS))) == interop.MAX_PACKETS
