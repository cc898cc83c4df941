"""Tests for ``espspec check-pcap`` / ``gen-pcap`` (harness.pcapcheck).

Theory of operation
-------------------
Captures come from three independent producers: espspec's own generator (the model's
``Sender``, with seeded faults), scapy's ``SecurityAssociation`` + ``wrpcap`` (an
implementation that shares no code with the model), and the seeded-bug mutants of
``harness.mutants`` driven through the IUT contract. The checker must pass the first
without faults and the second, name the requirement each fault or mutant breaks (at the
packet the generator says it put it), and turn every kind of bad input into findings with
file offsets and packet numbers -- never a traceback. The real tshark (no mock) must
decrypt what gen-pcap writes with the esp_sa table it writes. Subcommands are driven
through espspec's own argparse parser (harness.cli.build_parser).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import subprocess
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.capture import DissectConfig, dissect
from harness.cli import build_parser
from harness.pcapcheck import (FAULTS, CheckConfig, GenConfig, GenError, KeysError, SaKey,
                               check_capture, generate_capture, load_keys)
from harness.pcapcheck.config import DEFAULT_DISSECT
from harness.pcapcheck.generate import (MAX_PACKETS, PacketCountError, output_paths,
                                       output_sizes)
from harness.pcapcheck.sacheck import PassContext, SaCheck
from harness.pcapcheck.senderpass import ETH_IP4_FIELDS
from harness.pcapcheck.keys import apply_overrides
from harness.pcapcheck.report import FindingSink
from spec_model import CATALOGUE, NAMED, Mode, SeqWire, named
from spec_model.requirements import Level

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

PROFILES = list(NAMED)
MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"   # explicit: no ARP look-ups


# --- helpers ----------------------------------------------------------------------------


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = build_parser()          # check-pcap and gen-pcap are part of espspec's CLI
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def gen(tmp_path, profile: str = "esp", packets: int = 120, name: str | None = None,
        **kw):
    out = str(tmp_path / f"{name or profile}.pcap")
    p = kw.pop("profile_obj", None) or named(profile)
    return generate_capture(GenConfig(p, packets, out, **kw))


def records_of(path: str) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """(file header, [(ts_sec, ts_usec, frame)]) of a classic little-endian pcap."""
    raw = open(path, "rb").read()
    out, off = [], 24
    while off + 16 <= len(raw):
        sec, usec, cap, _orig = struct.unpack_from("<IIII", raw, off)
        out.append((sec, usec, raw[off + 16:off + 16 + cap]))
        off += 16 + cap
    return raw[:24], out


def write_pcap(path, linktype: int, frames: list[bytes], snaplen: int = 262144) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1_700_000_000, i, len(fr), len(fr)) + fr)


def pcapng_block(btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def write_pcapng(path, interfaces: list[int], packets: list[tuple[int, bytes]]) -> None:
    out = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for lt in interfaces:
        out += pcapng_block(1, struct.pack("<HHI", lt, 0, 262144))
    for i, (ifid, fr) in enumerate(packets):
        out += pcapng_block(6, struct.pack("<IIIII", ifid, 0, i, len(fr), len(fr)) + fr)
    with open(path, "wb") as f:
        f.write(out)


def only(report, verdicts=("FAIL", "NON-STRICT", "ERROR")) -> dict:
    return {f.key: f for f in report.findings if f.verdict in verdicts}


# --- 1. generated captures pass, every named profile -------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_generated_capture_passes(tmp_path, profile):
    res = gen(tmp_path, profile, 160, sas=2, receiver_out=str(tmp_path / "rx.pcap"))
    rep = check_capture(res.capture, res.keys, receiver=res.receiver)
    assert rep.exit_code == 0, rep.render()
    assert not rep.findings, rep.render()
    assert rep.records == rep.ipsec == 160
    n = named(profile).n_sub_sas
    for sa in rep.sas:
        assert [s.packets for s in sa.subs] == [80 // n] * n
        assert all(s.highest_counter == 80 // n and s.first_counter == 1 for s in sa.subs)
        assert all(s.payload_bytes == 64 * (80 // n) for s in sa.subs)
    r = rep.receiver
    assert r.records == r.model_delivered == r.agree_delivered == 160
    assert r.iut_extra == r.iut_missing == r.unmatched == 0


def test_cli_round_trip_udp_ipv6(tmp_path, capsys):
    out = str(tmp_path / "u.pcap")
    code, text, err = run_cli(["gen-pcap", "--profile", "esp-esn", "--packets", "50",
                               "--udp", "--ipv6", "-o", out], capsys)
    assert code == 0 and "wrote 50 records" in text and not err
    code, text, err = run_cli(["check-pcap", out, "--keys", out[:-5] + ".keys.json",
                               "--report", str(tmp_path / "r.json")], capsys)
    assert code == 0, text + err
    assert "findings: none -> PASS" in text
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["ipsec"] == 50 and doc["failed"] is False


def test_esp_sa_table_is_a_key_file(tmp_path, capsys):
    res = gen(tmp_path, "esp-subsa-salt", 120)
    sas = load_keys(res.esp_sa, "esp-subsa-salt")
    assert len(sas) == 1 and sas[0].spi == res.sas[0].spi
    assert sas[0].keymat == res.sas[0].keymat
    code, text, err = run_cli(["check-pcap", res.capture, "--keys", res.esp_sa,
                               "--profile", "esp-subsa-salt"], capsys)
    assert code == 0, text + err


# --- 2. seeded faults are found with the right requirement -------------------------------


def _fault_cases():
    for profile in PROFILES:
        for fault in FAULTS:
            yield profile, fault


@pytest.mark.parametrize("profile,fault", list(_fault_cases()))
def test_seeded_fault_is_found(tmp_path, profile, fault):
    p = named(profile)
    stride = p.n_sub_sas
    packets = 2 * (p.window + 2) * stride + 8 if fault in ("late", "too-late") else 120
    try:
        res = gen(tmp_path, profile, packets, faults=(fault,),
                  receiver_out=str(tmp_path / "rx.pcap"))
    except GenError as e:           # the fault has no meaning for this profile:
        assert fault in ("nonce-reuse", "bad-padding", "seq-wrap"), e
        return                      # the generator must refuse it, and did
    rep = check_capture(res.capture, res.keys, receiver=res.receiver)
    expect = res.expect[fault]
    assert expect in rep.counts, f"{fault} on {profile}: expected {expect}\n{rep.render()}"
    hits = [f for f in rep.findings if f.key == expect and f.capture == "sender"]
    assert hits and all(f.offset >= 0 and f.packet >= 1 for f in hits)
    where = res.fault_packets.get(fault)
    if where:
        assert min(f.packet for f in hits) == where[0], rep.render()
    failing = expect not in ("snap-cut", "unknown-spi", "malformed-frame", "duplicate",
                             "iv-order")
    assert rep.exit_code == (1 if failing else 0), rep.render()
    # the model receiver's own capture agrees with the model: no receiver finding fails
    assert not [f for f in rep.findings if f.kind == "receiver"], rep.render()


# --- 3. the fast paths do exactly what the model's pieces do ----------------------------


def _feed_both(capture: str, keys: str):
    """Feed every packet through the ESP closure and through the codec path."""
    from harness.capture import CaptureReader, iter_dissected
    sas = load_keys(keys)
    out = []
    for fast in (True, False):
        sink = FindingSink(1000)
        ctx = PassContext(capture, sink, CheckConfig())
        c = SaCheck(sas[0], ctx, None, {})
        for sub in range(c.n):
            c.sub_info(sub)
        if fast:
            assert c.feed.__name__ == "feed"     # the closure is in use, not the fallback
        for rec, d in iter_dissected(CaptureReader(capture), DEFAULT_DISSECT):
            if d[0] == "other" or d[9]:
                continue
            if fast:
                c.feed(rec[0], rec[1], rec[2], rec[7], d[5], d[6])
            else:
                c.feed_esp(rec[0], rec[1], rec[2] + d[5], rec[7][d[5]:d[5] + d[6]])
        ctx.close()
        out.append((c.stats(), sorted(map(str, sink.findings))))
    return out


FAST_PROFILES = {
    "esp": named("esp"),
    "esp-esn": named("esp-esn"),
    "esp-subsa-salt": named("esp-subsa-salt"),
    # the ID in the SPI without ESN
    "spi-seq64": named("esp-subsa-spi").replace(name="esp-subsa-spi", seq=SeqWire.SEQ64),
}


@pytest.mark.parametrize("fault", ["nonce-reuse", "bad-icv", "bad-padding", "duplicate",
                                   "reorder", "seq-wrap", "late"])
@pytest.mark.parametrize("profile", list(FAST_PROFILES))
def test_esp_fast_path_agrees_with_codec_path(tmp_path, fault, profile):
    p = FAST_PROFILES[profile]
    try:
        res = gen(tmp_path, profile, 300 * p.n_sub_sas, profile_obj=p, faults=(fault,),
                  fault_at=150 * p.n_sub_sas)
    except GenError as e:           # a fault this profile cannot have: refused, as it must be
        assert fault in ("nonce-reuse", "bad-padding", "seq-wrap"), e
        return
    (fast_stats, fast_findings), (slow_stats, slow_findings) = _feed_both(res.capture,
                                                                          res.keys)
    assert fast_stats == slow_stats
    assert fast_findings == slow_findings and fast_findings


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(12, 40), st.integers(0, 255)), max_size=4),
       st.integers(0, 40))
def test_fast_frame_path_agrees_with_dissector(edits, cut):
    base = bytes.fromhex("020000000002020000000001" "0800") + \
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 84, 0, 0x4000, 64, 50, 0, bytes(4), bytes(4)) + \
        bytes(64)
    frame = bytearray(base)
    for at, value in edits:
        frame[at] = value
    frame = bytes(frame[:len(frame) - cut])
    if len(frame) < 42:
        return
    ethertype, vihl, total, frag, proto = ETH_IP4_FIELDS.unpack_from(frame, 0)
    if ethertype == 0x0800 and vihl == 0x45 and proto == 50 and not frag & 0x3FFF \
            and total + 14 == len(frame) and total >= 28:
        d = dissect(1, frame, DEFAULT_DISSECT)
        assert (d.kind, d.payload_offset, d.payload_length) == ("esp", 34, total - 20)


# --- 4. scapy's SecurityAssociation as an independent producer ---------------------------

SCAPY_CASES = [  # aead, esn, high, tunnel, v6 outer, v6 inner, iv = seq
    ("aes128gcm16", False, 0, True, False, False, False),
    ("aes128gcm16", True, 0, True, False, True, True),
    ("aes256gcm16", True, 1, True, True, False, False),
    ("chacha20poly1305", False, 0, False, False, False, True),
    ("aes128gcm16", True, 0, False, True, True, False),
]


@pytest.mark.parametrize("aead,esn,high,tunnel,v6o,v6i,iv_seq", SCAPY_CASES)
def test_scapy_written_capture_passes(tmp_path, aead, esn, high, tunnel, v6o, v6i, iv_seq):
    ipsec = pytest.importorskip("scapy.layers.ipsec")
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap
    profile = named("esp-esn" if esn else "esp").replace(
        aead=aead, mode=Mode.TUNNEL if tunnel else Mode.TRANSPORT)
    keymat = bytes((7 * i + 3) & 0xFF for i in range(profile.aead_spec.keymat_len))
    outer = IPv6(src="2001:db8::1", dst="2001:db8::2") if v6o else \
        IP(src="192.0.2.1", dst="192.0.2.2")
    sa = ipsec.SecurityAssociation(
        ipsec.ESP, spi=0x4321, crypt_algo="CHACHA20-POLY1305" if aead.startswith("chacha")
        else "AES-GCM", crypt_key=keymat, auth_algo=None,
        tunnel_header=outer if tunnel else None, esn_en=esn, esn=high)
    frames = []
    for i in range(1, 41):
        l4 = UDP(sport=5000, dport=53) / Raw(b"scapy %d " % i + bytes(i % 7))
        if tunnel:
            inner = (IPv6(src="2001:db8:1::1", dst="2001:db8:1::2") if v6i
                     else IP(src="10.0.0.1", dst="10.0.0.2")) / l4
        else:
            inner = outer.copy() / l4
        iv = struct.pack("!Q", (high << 32) | i) if iv_seq else None
        frames.append(Ether(src=MAC_A, dst=MAC_B) / sa.encrypt(inner, seq_num=i, iv=iv))
    wrpcap(str(tmp_path / "scapy.pcap"), frames)
    rep = check_capture(str(tmp_path / "scapy.pcap"),
                        [SaKey(0x4321, profile, keymat, esn_start=high << 32)])
    assert rep.exit_code == 0, rep.render()
    assert not only(rep), rep.render()
    sub = rep.sas[0].subs[0]
    assert sub.packets == 40 and sub.highest_counter == (high << 32) + 40
    # scapy draws random IVs unless told: legal, reported as INFO and tracked exactly
    assert ("nonce-rule" in rep.counts) == (not iv_seq)


def test_scapy_capture_with_reused_iv_is_rejected(tmp_path):
    ipsec = pytest.importorskip("scapy.layers.ipsec")
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from scapy.utils import wrpcap
    keymat = bytes(range(20))
    sa = ipsec.SecurityAssociation(ipsec.ESP, spi=0x4321, crypt_algo="AES-GCM",
                                   crypt_key=keymat, auth_algo=None,
                                   tunnel_header=IP(src="192.0.2.1", dst="192.0.2.2"))
    frames = [Ether(src=MAC_A, dst=MAC_B) / sa.encrypt(IP(src="10.0.0.1", dst="10.0.0.2") / UDP() /
                                   Raw(b"%d" % i), seq_num=i, iv=b"\x00" * 7 + b"\x05")
              for i in range(1, 6)]
    wrpcap(str(tmp_path / "reuse.pcap"), frames)
    rep = check_capture(str(tmp_path / "reuse.pcap"), [SaKey(0x4321, named("esp"), keymat)])
    hits = rep.by_requirement("NONCE-UNIQUE-PER-KEY")
    assert rep.exit_code == 1 and hits
    # packet 5 carries IV 5 by the rule; packets 1-4 broke it with the same IV
    assert "packet 1" in hits[0].message and hits[0].packet == 2


# --- 5. tshark decrypts what espspec writes -----------------------------------------------


TSHARK = shutil.which("tshark")


@pytest.mark.skipif(TSHARK is None, reason="the tshark binary is not installed "
                    "(apt-get install -y tshark); no substitute is used")
@pytest.mark.parametrize("udp,ipv6,sas", [(False, False, 1), (True, True, 2)])
def test_tshark_decrypts_espspec_capture(tmp_path, udp, ipv6, sas):
    res = gen(tmp_path, "esp", 30, udp=udp, ipv6=ipv6, sas=sas)
    conf = tmp_path / "wireshark"
    conf.mkdir()
    shutil.copy(res.esp_sa, conf / "esp_sa")
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=str(conf), HOME=str(tmp_path))
    out = subprocess.run(
        [TSHARK, "-r", res.capture, "-o", "esp.enable_encryption_decode:TRUE",
         "-o", "esp.enable_authentication_check:TRUE", "-T", "fields",
         "-e", "esp.sequence", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.dstport",
         "-e", "esp.icv_good"],
        capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    assert len(rows) == 30
    for j, (seq, src, dst, dport, good) in enumerate(rows):
        i = j % sas
        assert int(seq) == j // sas + 1
        # the inner IPv4 header only exists after decryption
        assert src.split(",")[-1] == "10.0.%d.1" % i and dst.split(",")[-1] == "10.1.%d.1" % i
        assert dport.split(",")[-1] == "5001"
        assert good in ("1", "True")
    # the same table passed inline with -o uat:esp_sa
    line = [ln for ln in open(res.esp_sa) if not ln.startswith("#")][0].strip()
    out = subprocess.run([TSHARK, "-r", res.capture, "-c", "1", "-o",
                          "esp.enable_encryption_decode:TRUE", "-o", f"uat:esp_sa:{line}",
                          "-T", "fields", "-e", "ip.src"], capture_output=True, text=True,
                         env=dict(os.environ, HOME=str(tmp_path)), timeout=60).stdout
    assert out.strip().split(",")[-1] == "10.0.0.1"


# --- 6. mutant implementations are rejected naming the right requirement ----------------

MUTANT_CASES = [
    # (mutant, profile, packets, generator options, profile overrides, expected)
    ("iv-stuck", "esp", 60, {}, {}, "NONCE-UNIQUE-PER-KEY"),
    ("iv-stuck", "psp-v0", 60, {}, {}, "NONCE-UNIQUE-PER-KEY"),
    ("counter-iv-shared-key", "esp-subsa-spi", 60, {}, {}, "NONCE-SUBSA-SEPARATION"),
    ("counter-iv-shared-key", "esp-subsa-salt", 60, {}, {}, "NONCE-SUBSA-SEPARATION"),
    ("kdf-ignores-session-id", "eesp-v0", 60, {}, {}, "KDF-SUBSA-KEY"),
    ("iiv-low32", "esp-iiv", 20, {"start_counter": (1 << 32) - 5}, {}, "NONCE-IIV-LAYOUT"),
    ("counter-wraps", "esp", 20, {"start_counter": (1 << 32) - 5}, {}, "SEQ-NO-WRAP"),
    ("counter-wraps", "esp-esn", 20, {"start_counter": (1 << 64) - 5}, {}, "SEQ-NO-WRAP"),
    ("counter-wraps", "eesp-v0", 40, {"start_counter": (1 << 64) - 5}, {}, "SEQ-NO-WRAP"),
    ("hard-limit-off-by-one", "esp-subsa-salt", 80, {}, {"hard_packets": 40},
     "LIMIT-HARD-PER-SUBSA"),
    ("hard-limit-not-divided", "esp-subsa-salt", 80, {}, {"hard_packets": 40},
     "LIMIT-HARD-PER-SUBSA"),
    ("counter-space-unpartitioned", "esp-subsa-seq", 40, {"start_counter": (1 << 30) - 5},
     {}, "SEQ-NO-WRAP"),
    ("esp-zero-padding", "esp", 40, {}, {}, "PAD-CONTENT-SEND"),
    ("esn-high-not-in-aad", "esp-esn", 40, {}, {}, "AAD-ESN-HIGH"),
    ("aad-seq-low32", "esp-seq64", 40, {}, {}, "AAD-SEQ64-FULL"),
    ("subsa-id-wrong-place", "eesp-v0", 40, {}, {}, "SUBSA-ID-LOCATION"),
    ("subsa-id-wrong-place", "esp-subsa-spi", 40, {}, {}, "SUBSA-ID-LOCATION"),
    ("cryptoff-not-in-aad", "eesp-v0-transport", 40, {}, {}, "CRYPTOFF-AUTHENTICATED"),
    # receivers, judged from the capture of what they delivered
    # a window of W + 1 is a receiver's choice (RFC 4303 §3.4.3): espspec-strict
    ("window-too-wide", "esp", 200, {"faults": ("too-late",), "fault_at": 10,
                                     "iut_role": "receiver"}, {}, "REPLAY-WINDOW-EXACT"),
    ("window-too-narrow", "esp", 200, {"faults": ("late",), "fault_at": 10,
                                       "iut_role": "receiver"}, {}, "REPLAY-WINDOW-SIZE"),
    ("duplicate-top-accepted", "esp", 60, {"faults": ("duplicate",),
                                           "iut_role": "receiver"}, {},
     "REPLAY-DUPLICATE-DROP"),
    ("padding-unchecked", "esp", 60, {"faults": ("bad-padding",), "iut_role": "receiver"},
     {}, "PAD-CONTENT-CHECK"),
    ("short-icv-accepted", "esp", 60, {"faults": ("bad-icv",), "iut_role": "receiver"}, {},
     "ICV-VERIFY"),
]


def _mutant_registry():
    from harness.mutants import MUTANT_INFO, MUTANTS
    return MUTANTS, MUTANT_INFO


def test_mutant_table_covers_the_families():
    mutants, info = _mutant_registry()
    present = [m for m, *_ in MUTANT_CASES if m in mutants]
    families = {}
    for m in present:
        families.setdefault(info[m].family, set()).add(m)
    for family in ("nonce", "limits", "wire"):
        assert len(families.get(family, ())) >= 3, (family, families)


@pytest.mark.parametrize("mutant,profile,packets,options,overrides,expect", MUTANT_CASES,
                         ids=[f"{m}-{p}" for m, p, *_ in MUTANT_CASES])
def test_mutant_capture_is_rejected(tmp_path, mutant, profile, packets, options, overrides,
                                    expect):
    mutants, info = _mutant_registry()
    assert mutant in mutants, f"mutant {mutant} is not registered"
    assert expect in info[mutant].requirements or expect == "ICV-VERIFY"
    p = apply_overrides(named(profile), overrides, "test")
    rx = str(tmp_path / "rx.pcap") if options.get("iut_role") == "receiver" else None
    res = gen(tmp_path, profile, packets, profile_obj=p, iut=f"mutant:{mutant}",
              receiver_out=rx, **options)
    strict = CATALOGUE[expect].level is Level.STRICT     # fails only under --strict
    rep = check_capture(res.capture, res.keys, receiver=rx, config=CheckConfig(strict=strict))
    assert rep.exit_code == 1
    judged = "receiver" if rx else "check"     # the receiver's decisions, or the sender's
    assert [f for f in rep.findings if f.key == expect and f.kind == judged], rep.render()
    # the reference implementation through the same path passes
    ref = gen(tmp_path, profile, packets, name="reference", profile_obj=p, iut="reference",
              receiver_out=str(tmp_path / "rx-ref.pcap") if rx else None, **options)
    rep = check_capture(ref.capture, ref.keys, receiver=ref.receiver)
    assert not [f for f in rep.findings if f.kind == judged and f.verdict == "FAIL"], \
        rep.render()


def test_mutant_via_cli(tmp_path, capsys):
    mutants, _info = _mutant_registry()
    assert "iv-stuck" in mutants
    out = str(tmp_path / "m.pcap")
    code, _text, err = run_cli(["gen-pcap", "--profile", "esp", "--packets", "30",
                                "--iut", "mutant:iv-stuck", "-o", out], capsys)
    assert code == 0, err
    code, text, _err = run_cli(["check-pcap", out, "--keys", out[:-5] + ".keys.json"],
                               capsys)
    assert code == 1 and "FAIL NONCE-UNIQUE-PER-KEY: packet 2," in text


# --- 7. bad input: findings with offsets, never a traceback -------------------------------


@pytest.fixture
def clean(tmp_path):
    return gen(tmp_path, "esp", 20, name="clean")


def check(capsys, capture: str, keys: str, *extra: str) -> tuple[int, str, str]:
    code, out, err = run_cli(["check-pcap", capture, "--keys", keys, *extra], capsys)
    assert "Traceback" not in out + err
    return code, out, err


def test_truncated_file_header(tmp_path, clean, capsys):
    bad = tmp_path / "t.pcap"
    bad.write_bytes(open(clean.capture, "rb").read()[:10])
    code, out, _ = check(capsys, str(bad), clean.keys)
    assert code == 1 and "ERROR truncated-file: file offset 0" in out


def test_truncated_record(tmp_path, clean, capsys):
    raw = open(clean.capture, "rb").read()
    _head, recs = records_of(clean.capture)
    bad = tmp_path / "t.pcap"
    bad.write_bytes(raw[:-30])          # inside the data of record 20
    code, out, _ = check(capsys, str(bad), clean.keys)
    last = len(raw) - 16 - len(recs[-1][2])
    assert code == 1
    assert f"ERROR truncated-record: file offset {last}, packet 20:" in out
    assert "19 ESP/EESP/PSP" in out      # everything before it was checked
    bad.write_bytes(raw[:last + 9])     # inside the header of record 20
    code, out, _ = check(capsys, str(bad), clean.keys)
    assert code == 1 and f"file offset {last}, packet 20:" in out


def test_snap_cut_packets(tmp_path, clean, capsys):
    _head, recs = records_of(clean.capture)
    path = tmp_path / "cut.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 60, 1))
        offsets = []
        for sec, usec, fr in recs:
            offsets.append(f.tell())
            f.write(struct.pack("<IIII", sec, usec, min(60, len(fr)), len(fr)) + fr[:60])
    rep = check_capture(str(path), clean.keys)
    assert rep.exit_code == 0 and rep.snap_cut == 20
    cuts = [f for f in rep.findings if f.kind == "snap-cut"]
    assert [(f.packet, f.offset) for f in cuts] == list(zip(range(1, 11), offsets[:10]))
    assert rep.counts["snap-cut"] == 20 and rep.suppressed["snap-cut"] == 10


def test_unknown_link_type(tmp_path, clean, capsys):
    _head, recs = records_of(clean.capture)
    path = tmp_path / "lt.pcap"
    write_pcap(path, 147, [fr for _s, _u, fr in recs])
    code, out, _ = check(capsys, str(path), clean.keys)
    assert code == 1 and "ERROR unknown-linktype: file offset 20, before packet 1" in out
    # pcapng: one interface of an unknown type, one Ethernet: the latter is checked
    path = tmp_path / "lt.pcapng"
    write_pcapng(path, [147, 1], [(0, b"\x00" * 30)] + [(1, fr) for _s, _u, fr in recs])
    code, out, _ = check(capsys, str(path), clean.keys)
    assert code == 0, out
    assert "INFO unknown-linktype:" in out and "20 ESP/EESP/PSP" in out


@pytest.mark.parametrize("linktype", [113, 276, 101, 228])
def test_other_link_types_and_pcapng(tmp_path, clean, linktype):
    _head, recs = records_of(clean.capture)
    frames = []
    for _s, _u, fr in recs:
        ip = fr[14:]
        if linktype == 113:
            frames.append(struct.pack("!HHH8sH", 0, 1, 6, bytes(8), 0x0800) + ip)
        elif linktype == 276:
            frames.append(struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, bytes(8)) + ip)
        else:
            frames.append(ip)
    write_pcap(tmp_path / "l.pcap", linktype, frames)
    write_pcapng(tmp_path / "l.pcapng", [linktype], [(0, fr) for fr in frames])
    for path in ("l.pcap", "l.pcapng"):
        rep = check_capture(str(tmp_path / path), clean.keys)
        assert rep.exit_code == 0 and rep.ipsec == 20 and not rep.findings, rep.render()


def test_ike_and_keepalives_on_4500_are_not_esp(tmp_path):
    from harness.pcapcheck.pcapwriter import FrameBuilder
    res = gen(tmp_path, "esp", 20, udp=True)
    _h, recs = records_of(res.capture)
    fb = FrameBuilder("192.0.2.1", "198.51.100.1", 17, 4500, 4500)
    ike = fb.frame(b"\x00\x00\x00\x00" + bytes(range(28)))      # non-ESP marker + IKE
    keepalive = fb.frame(b"\xff")
    frames = [fr for _s, _u, fr in recs]
    write_pcap(tmp_path / "mixed.pcap", 1, frames[:10] + [ike, keepalive] + frames[10:])
    rep = check_capture(str(tmp_path / "mixed.pcap"), res.keys)
    assert rep.exit_code == 0 and not rep.findings, rep.render()
    assert (rep.records, rep.ipsec, rep.other) == (22, 20, 2)


def test_unknown_spi_is_info(tmp_path, clean, capsys):
    res = gen(tmp_path, "esp", 20, name="other", seed=9)
    _h, mine = records_of(clean.capture)
    _h, theirs = records_of(res.capture)
    path = tmp_path / "mixed.pcap"
    theirs_fr = [fr[:34] + struct.pack("!I", 0x7000) + fr[38:] for _s, _u, fr in theirs]
    write_pcap(path, 1, [fr for _s, _u, fr in mine[:5]] + theirs_fr[:3] +
               [fr for _s, _u, fr in mine[5:]])
    code, out, _ = check(capsys, str(path), clean.keys)
    assert code == 0, out
    assert "INFO unknown-spi: packet 6, file offset" in out and "SPI 0x00007000" in out
    assert "3 with unknown SPI" in out


def test_garbage_file_and_empty_file(tmp_path, clean, capsys):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(bytes((i * 37 + 11) & 0xFF for i in range(3000)))
    code, out, _ = check(capsys, str(junk), clean.keys)
    assert code == 1 and "ERROR bad-magic: file offset 0" in out
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    code, out, _ = check(capsys, str(empty), clean.keys)
    assert code == 1 and "ERROR empty-file" in out


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 3000), st.binary(min_size=1, max_size=12)),
                min_size=1, max_size=6), st.integers(0, 200))
def test_corrupted_capture_never_raises(tmp_path_factory, edits, chop):
    base = tmp_path_factory.getbasetemp() / "fuzzbase"
    if not (base / "esp.pcap").exists():
        base.mkdir(exist_ok=True)
        generate_capture(GenConfig(named("esp"), 30, str(base / "esp.pcap"), sas=2))
    raw = bytearray((base / "esp.pcap").read_bytes())
    for at, blob in edits:
        at %= len(raw)
        raw[at:at + len(blob)] = blob
    raw = bytes(raw[:len(raw) - chop])
    path = base / "fuzz.pcap"
    path.write_bytes(raw)
    rep = check_capture(str(path), str(base / "esp.keys.json"), jobs=1)
    for f in rep.findings:
        assert f.packet >= 0 and f.offset >= -1 and f.message
        assert f.verdict in ("FAIL", "NON-STRICT", "INFO", "ERROR")
    assert rep.exit_code in (0, 1)


# --- 8. key files -------------------------------------------------------------------------


@pytest.mark.parametrize("content,needs_profile,fragment", [
    ('{"sas": [', False, "not valid JSON"),
    ('{"sas": [{"spi": "0x1000", "profile": "esp", "keymat": "0011"}]}', False, "needs 20"),
    ('{"sas": [{"spi": "0x1000", "profile": "nope", "keymat": "00"}]}', False,
     "unknown profile"),
    ('{"sas": [{"spi": "0x1000", "profile": "esp", "keymat": "zz"}]}', False,
     "not hexadecimal"),
    ('{"sas": [{"spi": "0x10", "profile": "esp", "keymat": "' + "00" * 20 + '"}]}', False,
     "reserved"),
    ('"IPv4","*","*","0x1000","AES-GCM with 16 octet ICV [RFC4106]","0x00","NULL","0x"\n',
     True, "does not fit"),
    ('"IPv4","*","*","0x1000","AES-CBC [RFC3602]","0x' + "00" * 20 + '","NULL","0x"\n', True,
     "not an AEAD"),
    ('"IPv4","*","*","0x1000","AES-GCM with 16 octet ICV [RFC4106]"\n', True, "8"),
    ('"IPv4","*","*","0x1000","AES-GCM with 16 octet ICV [RFC4106]","0x' + "00" * 20 +
     '","NULL","0x"\n', False, "give --profile"),
])
def test_broken_key_file_exits_2_with_one_line(tmp_path, clean, capsys, content,
                                               needs_profile, fragment):
    keys = tmp_path / "k"
    keys.write_text(content)
    extra = ["--profile", "esp"] if needs_profile else []
    code, out, err = check(capsys, clean.capture, str(keys), *extra)
    assert code == 2 and not out
    assert len(err.strip().splitlines()) == 1 and fragment in err, err
    assert str(keys) in err


def test_cli_set_overrides_every_sa(clean, capsys):
    code, out, _ = check(capsys, clean.capture, clean.keys, "--set", "hard_packets=15")
    assert code == 1 and "FAIL LIMIT-HARD-SUM: packet 16," in out
    code, out, err = check(capsys, clean.capture, clean.keys, "--set", "window=3")
    assert code == 2 and not out and "window" in err and len(err.splitlines()) == 1


def test_missing_files_exit_2(tmp_path, clean, capsys):
    code, out, err = check(capsys, clean.capture, str(tmp_path / "absent.json"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, out, err = check(capsys, str(tmp_path / "absent.pcap"), clean.keys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_key_api_errors_are_keys_errors(tmp_path):
    keys = tmp_path / "k.json"
    keys.write_text('{"sas": []}')
    with pytest.raises(KeysError):
        check_capture(str(keys), str(keys))


def test_key_reused_across_sas(tmp_path, monkeypatch):
    """Two SAs given the same key material share key, salt and IV space: every counter
    both use repeats a nonce, and their counters together pass the 2^64 cap."""
    import harness.pcapcheck.generate as gen_module
    same = gen_module.keymat_for
    monkeypatch.setattr(gen_module, "keymat_for", lambda p, seed, i: same(p, seed, 0))
    res = gen(tmp_path, "esp-seq64", 40, sas=2, start_counter=(1 << 63) + 5)
    for jobs in (1, 2):
        rep = check_capture(res.capture, res.keys, jobs=jobs)
        assert rep.jobs == 1          # one nonce space: one unit of work
        hits = rep.by_requirement("NONCE-UNIQUE-PER-KEY")
        assert rep.counts["NONCE-UNIQUE-PER-KEY"] == 20
        assert hits[0].packet == 2 and "packet 1 of SPI 0x00010000" in hits[0].message
        assert rep.counts["LIMIT-2POW64-SHARED-KEY"] == 1


# --- 9. jobs, bounded reports and memory ------------------------------------------------


def test_jobs_2_equals_jobs_1(tmp_path):
    res = gen(tmp_path, "eesp-v0", 400, sas=2, faults=("duplicate",),
              receiver_out=str(tmp_path / "rx.pcap"))
    one = check_capture(res.capture, res.keys, receiver=res.receiver, jobs=1)
    two = check_capture(res.capture, res.keys, receiver=res.receiver, jobs=2)
    assert two.jobs == 2
    assert one.counts == two.counts and one.sas == two.sas
    assert sorted(map(str, one.findings)) == sorted(map(str, two.findings))
    assert one.receiver == two.receiver


def test_report_is_bounded(tmp_path):
    mutants, _ = _mutant_registry()
    assert "esp-zero-padding" in mutants
    res = gen(tmp_path, "esp", 600, iut="mutant:esp-zero-padding")
    rep = check_capture(res.capture, res.keys, config=CheckConfig(max_per_requirement=5))
    assert rep.counts["PAD-CONTENT-SEND"] == 600
    assert len(rep.by_requirement("PAD-CONTENT-SEND")) == 5
    assert rep.suppressed["PAD-CONTENT-SEND"] == 595
    assert "595 more PAD-CONTENT-SEND" in rep.render()


def test_memory_does_not_grow_with_the_capture(tmp_path):
    small = gen(tmp_path, "esp", 4000, name="small")
    big = gen(tmp_path, "esp", 20000, name="big")
    peaks = []
    for res in (small, big):
        tracemalloc.start()
        rep = check_capture(res.capture, res.keys)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert rep.exit_code == 0
    # five times the packets: the peak may not follow (ring and tables are fixed-size)
    assert peaks[1] < 1.5 * peaks[0] + 512 * 1024, peaks


def test_eesp_port_is_configurable(tmp_path):
    res = gen(tmp_path, "eesp-v0", 40, eesp_port=4501)
    assert check_capture(res.capture, res.keys).ipsec == 0
    rep = check_capture(res.capture, res.keys, dissect=DissectConfig(eesp_udp_port=4501))
    assert rep.ipsec == 40 and rep.exit_code == 0


# --- 10. what a new user types: usage errors, the packet cap, disk space, the README -----


@pytest.mark.parametrize("jobs", ["0", "-3"])
def test_jobs_below_one_is_a_usage_error(clean, capsys, jobs):
    code, out, err = check(capsys, clean.capture, clean.keys, "--jobs", jobs)
    assert code == 2 and not out
    assert len(err.strip().splitlines()) == 1 and "--jobs" in err and jobs in err, err


@pytest.mark.parametrize("packets", ["0", "-3"])
def test_packets_below_one_is_a_usage_error(tmp_path, capsys, packets):
    out = str(tmp_path / "p.pcap")
    code, text, err = run_cli(["gen-pcap", "--profile", "esp", "--packets", packets,
                               "-o", out], capsys)
    assert code == 2 and not text
    assert len(err.strip().splitlines()) == 1 and "--packets" in err, err
    assert not list(tmp_path.iterdir())           # nothing written


def test_packets_above_the_cap_are_refused(tmp_path, capsys):
    out = str(tmp_path / "p.pcap")
    # the API first: without the cap the CLI below would start writing 10^12 packets
    with pytest.raises(PacketCountError):
        GenConfig(named("esp"), MAX_PACKETS + 1, out)
    GenConfig(named("esp"), MAX_PACKETS, out)      # the cap itself is allowed
    code, text, err = run_cli(["gen-pcap", "--profile", "esp", "--packets",
                               "1000000000000", "-o", out], capsys)
    assert code == 2 and not text
    assert len(err.strip().splitlines()) == 1 and str(MAX_PACKETS) in err, err
    assert not list(tmp_path.iterdir())
    with pytest.raises(SystemExit):
        build_parser().parse_args(["gen-pcap", "--help"])
    assert f"1..{MAX_PACKETS}" in capsys.readouterr().out     # the cap is documented


def _free_space(monkeypatch, free: int) -> None:
    """The free space every file system reports (the real disk cannot be filled in a
    test); total and used stay the real figures."""
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=free))


def test_gen_pcap_refuses_when_the_folder_is_too_small(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "big.pcap")
    argv = ["gen-pcap", "--profile", "esp-esn", "--packets", "1000", "-o", out,
            "--receiver-out", str(tmp_path / "rx.pcap")]
    sizes = output_sizes(GenConfig(named("esp-esn"), 1000, out,
                                   receiver_out=str(tmp_path / "rx.pcap")))
    assert sorted(sizes) == sorted(str(tmp_path / f) for f in
                                   ("big.pcap", "big.keys.json", "big.esp_sa", "rx.pcap"))
    need = sum(sizes.values())
    _free_space(monkeypatch, need - 1)
    code, text, err = run_cli(argv, capsys)
    assert code == 2 and not text
    assert len(err.strip().splitlines()) == 1 and "free" in err and str(tmp_path) in err
    assert not list(tmp_path.iterdir())           # refused before writing anything
    _free_space(monkeypatch, need)
    code, text, err = run_cli(argv, capsys)
    assert code == 0 and not err, err
    # the estimate is what was written (no fault: exactly), so the refusal was right
    assert {p: os.path.getsize(p) for p in sizes} == sizes
    # writing the same files again only replaces them: it fits in no free space at all
    _free_space(monkeypatch, 0)
    code, text, err = run_cli(argv, capsys)
    assert code == 0 and not err, err


@pytest.mark.parametrize("profile,fault", [("esp-subsa-spi", "garbage"),
                                           ("eesp-v0", "bad-padding"),
                                           ("psp-v0", "duplicate"), ("esp", "snap-cut")])
def test_output_sizes_bound_what_is_written(tmp_path, profile, fault):
    cfg = GenConfig(named(profile), 200, str(tmp_path / "f.pcap"), sas=2, faults=(fault,),
                    receiver_out=str(tmp_path / "rx.pcap"), udp=True, ipv6=True)
    sizes = output_sizes(cfg)
    generate_capture(cfg)
    for path, n in sizes.items():
        assert 0 < os.path.getsize(path) <= n, path


def _readme_commands() -> list[str]:
    """The espspec command lines of the README's "Certifying from packet captures"."""
    text = open(os.path.join(os.path.dirname(__file__), os.pardir, "README.md")).read()
    section = text.split("\n## Certifying from packet captures\n", 1)[1].split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("espspec ")]


def test_readme_capture_commands_work_as_written(tmp_path, capsys):
    """Every command of the README's section, in order (its /tmp/ files in a scratch
    folder): gen-pcap's key files are where check-pcap is told to find them, and each
    exits as the README says (0, or the '# exit N' it notes)."""
    import shlex
    commands = _readme_commands()
    assert sum(c.startswith("espspec check-pcap ") for c in commands) >= 3, commands
    for line in commands:
        argv = shlex.split(line.replace("/tmp/", f"{tmp_path}/"), comments=True)[1:]
        expect = int(line.split("# exit ", 1)[1][0]) if "# exit " in line else 0
        if argv[0] == "check-pcap":
            keys = argv[argv.index("--keys") + 1]
            assert os.path.exists(keys), f"{line}: no key file {keys} (gen-pcap wrote " \
                f"{sorted(p.name for p in tmp_path.iterdir())})"
        code, out, err = run_cli(argv, capsys)
        assert code == expect, f"{line}\n{out}{err}"
        if argv[0] == "gen-pcap":
            _capture, keys, esp_sa = output_paths(argv[argv.index("-o") + 1])
            assert f"keys: {keys} (espspec), {esp_sa}" in out
        if "# exit 1: FAIL " in line:          # "REQUIREMENT" or "REQUIREMENT, packet N"
            req, _sep, where = line.split("# exit 1: FAIL ", 1)[1].partition(", ")
            assert f"FAIL {req}: {where + ',' if where else ''}" in out, out
