"""Evidence of failing cases: a pcap of the session's packets and its keys, beside the results.

Over the network (root, tshark): a mutant behind the reference daemon is killed over the
wire by ``espspec run --report``, every FAIL case has an evidence folder whose pcap
espspec's own reader parses and which the real tshark decrypts with the esp_sa table
beside it (and not without it). Without the network: the evidence verb's answer is checked
by the contract, a bad answer is an IUT-CONTRACT finding after the original one, an
evidence verb that raises never hides the failure, the evidence gets through the worker
process, the results document names the folder and its schema refuses a path that leaves
the report, and the README says what Wireshark 4.0 cannot decrypt.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from harness.adapters.reference import ReferenceIut
from harness.capture.evidence import DirectedSa, bundle, pcap_bytes
from harness.capture.frames import dissect
from harness.capture.pcapfile import iter_records
from harness.contract import ANSWERS, OPTIONAL_VERBS, SaConfig, contract_violation
from harness.engine.isolation import Isolated
from harness.engine.judge import Verdict
from harness.engine.runner import DEPTHS, CaseResult, run_case
from harness.engine.session import ConformanceFailure, Session, sa_pair
from harness.loader import load_iut
from harness.pcapcheck.keys import load_keys
from harness.results import schema
from harness.results.document import evidence_path, result_dict, write_evidence, write_json
from spec_model import named
from suites import CASES

ESPSPEC = [sys.executable, "-m", "harness.cli"]
TSHARK = shutil.which("tshark")
A, B = "192.0.2.10", "198.51.100.10"


def _tshark(tmp: Path, pcap: Path, esp_sa: Path | None, *args: str) -> list[list[str]]:
    """tshark's fields of every packet, with ``esp_sa`` as the SA table (none: no keys)."""
    conf = tmp / "wireshark"
    shutil.rmtree(conf, ignore_errors=True)
    conf.mkdir()
    if esp_sa is not None:
        shutil.copy(esp_sa, conf / "esp_sa")
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=str(conf), HOME=str(tmp))
    out = subprocess.run([TSHARK, "-r", str(pcap), "-o", "esp.enable_encryption_decode:TRUE",
                          "-o", "esp.enable_authentication_check:TRUE", *args],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    return [line.split("\t") for line in out.stdout.splitlines() if line.strip()]


# --- (a) over the network: a mutant daemon killed over the wire --------------------------
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, TUN)")
@pytest.mark.skipif(TSHARK is None, reason="the tshark binary is not installed "
                    "(apt-get install -y tshark); no substitute is used")
def test_failing_cases_over_the_network_leave_a_pcap_tshark_decrypts(tmp_path):
    report = tmp_path / "report"
    stale = report / "evidence" / "esp" / "old-case"
    stale.mkdir(parents=True)                       # an earlier run's evidence goes
    proc = subprocess.run(ESPSPEC + ["run", "--iut", "mutant-daemon:duplicate-top-accepted",
                                     "--profile", "esp", "--suite", "replay",
                                     "--report", str(report)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert not stale.exists()
    doc = schema.read_document(report / "results.json")     # the schema takes the field
    failed = [c for c in doc["cases"] if c["verdict"] == "FAIL"]
    assert failed, proc.stdout
    for case in doc["cases"]:
        if case["verdict"] != "FAIL":
            assert "evidence" not in case, case["case"]
    for case in failed:
        rel = case["evidence"]
        assert rel == f"evidence/esp/{case['case'].replace('/', '_')}"
        folder = report / rel
        assert sorted(p.name for p in folder.iterdir()) == ["README.txt", "esp_sa",
                                                             "packets.pcap"]
        assert f"evidence: {folder}" in proc.stdout
        pcap, esp_sa = folder / "packets.pcap", folder / "esp_sa"
        # espspec's own reader, strict: every record an Ethernet frame carrying ESP in UDP
        records = list(iter_records(str(pcap)))
        assert records, rel
        sas = load_keys(esp_sa, "esp")
        assert {(sa.src, sa.dst) for sa in sas} == {(A, B), (B, A)}
        spis = {sa.spi for sa in sas}
        for rec in records:
            assert rec[3] == 1                               # LINKTYPE_ETHERNET
            d = dissect(rec[3], rec[7])
            assert d.kind == "esp" and d.dport == 4500, (rel, d)
            assert int.from_bytes(rec[7][d.payload_offset:d.payload_offset + 4], "big") in spis
        times = [rec[4] for rec in records]
        assert times == sorted(times) and times[0] > 1_600_000_000 * 10**9   # wall clock
        # tshark decrypts with the table beside the capture: the inner IPv4 header of
        # protocol 253 (session.INNER_PROTOCOL) exists only after decryption
        rows = _tshark(tmp_path, pcap, esp_sa, "-T", "fields", "-e", "esp.spi",
                       "-e", "ip.proto", "-e", "esp.pad_len", "-e", "esp.protocol",
                       "-e", "esp.icv_good")
        assert len(rows) == len(records)
        for spi, proto, pad_len, nh, good in rows:
            assert proto.split(",") == ["17", "253"] and nh == "0x04" and pad_len, rows
            assert good in ("1", "True")
        inner = _tshark(tmp_path, pcap, esp_sa, "-Y", "ip.proto == 253")
        assert len(inner) == len(records)
        assert _tshark(tmp_path, pcap, None, "-Y", "ip.proto == 253") == []   # keys needed
        readme = (folder / "README.txt").read_text()
        assert "reference-daemon/duplicate-top-accepted" in readme
        assert "Wireshark 4.0 can decrypt every SA" in readme


# --- (b) the contract: what evidence may answer -------------------------------------------
def test_evidence_is_an_optional_verb_the_contract_checks():
    assert "evidence" in OPTIONAL_VERBS and "evidence" in ANSWERS
    assert contract_violation("evidence", None) is None
    assert contract_violation("evidence", {}) is None
    assert contract_violation("evidence", {"packets.pcap": b"x", "README.txt": b""}) is None
    for bad in ([b"pcap"], b"pcap", "x", {"packets.pcap": "text"}, {"../x": b""},
                {"a/b": b""}, {"": b""}, {"..": b""}, {3: b""}, {"x\n": b""},
                {"a\\b": b""}, {"x" * 300: b""}, {"packets.pcap": bytearray(b"x")}):
        assert contract_violation("evidence", bad), bad


def _sas(profile_name: str = "esp") -> tuple[SaConfig, SaConfig]:
    return sa_pair(named(profile_name), "test/evidence#1", 7)


def test_bundle_passes_the_contract_and_its_pcap_reads_back():
    out, inb = _sas()
    frames = [(1_700_000_000.25, b"\x02" * 12 + b"\x08\x00" + b"\x45" + b"\0" * 40),
              (1_700_000_000.125, b"\x02" * 60)]
    ev = bundle(frames, [DirectedSa(out, A, B, "out"), DirectedSa(inb, B, A, "in")],
                ["a note"])
    assert contract_violation("evidence", ev) is None
    assert set(ev) == {"packets.pcap", "esp_sa", "README.txt"}
    records = list(iter_records(ev["packets.pcap"]))
    assert [r[7] for r in records] == [frames[1][1], frames[0][1]]     # in time order
    assert [r[4] for r in records] == [1_700_000_000_125_000_000, 1_700_000_000_250_000_000]
    assert records[0][3] == 1
    lines = [ln for ln in ev["esp_sa"].decode().splitlines() if not ln.startswith("#")]
    assert lines[0].startswith(f'"IPv4","{A}","{B}","{out.spi:#010x}"')
    assert lines[1].startswith(f'"IPv4","{B}","{A}","{inb.spi:#010x}"')
    assert "a note" in ev["README.txt"].decode()
    assert pcap_bytes([])[:4] == struct.pack("<I", 0xA1B2C3D4)


@pytest.mark.parametrize("profile,expect", [
    ("esp", None), ("esp-esn", "ICV check fails"), ("esp-seq64", "64-bit sequence numbers"),
    ("esp-iiv", "implicit IV"), ("eesp-v0", "framing eesp-optimized"),
    ("psp-v0", "framing psp")])
def test_readme_says_what_wireshark_cannot_decrypt(profile, expect):
    out, inb = _sas(profile)
    ev = bundle([], [DirectedSa(out, A, B, "out"), DirectedSa(inb, B, A, "in")])
    readme, table = ev["README.txt"].decode(), ev["esp_sa"].decode()
    assert "packets.pcap: 0 Ethernet frames" in readme
    if expect is None:
        assert "Wireshark 4.0 can decrypt every SA" in readme
        return
    assert expect in readme and "cannot decrypt or check" in readme
    entries = [ln for ln in table.splitlines() if not ln.startswith("#")]
    if profile in ("eesp-v0", "psp-v0", "esp-iiv"):
        assert entries == [] and "not expressible" in table     # nothing it could use
    else:
        assert len(entries) == 2                                # written all the same


# --- the session asks for it; nothing hides the original failure --------------------------
class BadSender(ReferenceIut):
    """Sends packets whose last ICV byte is flipped; its evidence is ``answer``."""
    name = "bad-sender"
    answer = None

    def protect(self, sub_sa, payload, next_header):
        wire = super().protect(sub_sa, payload, next_header)
        return wire[:-1] + bytes([wire[-1] ^ 1]) if isinstance(wire, bytes) else wire

    def evidence(self):
        answer = type(self).answer
        if isinstance(answer, Exception):
            raise answer
        return answer


def _fail(answer) -> tuple[Session, ConformanceFailure]:
    cls = type("Iut", (BadSender,), {"answer": answer})
    s = Session.open(cls, named("esp"), label="t/esp#1")
    with pytest.raises(ConformanceFailure) as e:
        s.iut_send(0, 16)
    s.close()
    return s, e.value


def _original() -> list:
    class Plain(BadSender):
        evidence = None                      # no verb: nothing changes
    s = Session.open(Plain, named("esp"), label="t/esp#1")
    with pytest.raises(ConformanceFailure) as e:
        s.iut_send(0, 16)
    s.close()
    assert e.value.evidence is None
    return e.value.findings


def test_a_failing_session_carries_the_iuts_evidence():
    _, failure = _fail({"packets.pcap": b"pcap", "README.txt": b"hello"})
    assert failure.evidence == {"packets.pcap": b"pcap", "README.txt": b"hello"}
    assert failure.findings == _original()


def test_a_bad_evidence_answer_is_an_iut_contract_finding_after_the_original():
    original = _original()
    s, failure = _fail([b"not", b"a", b"dict"])
    assert failure.findings[:len(original)] == original
    extra = failure.findings[len(original):]
    assert [f.requirement for f in extra] == ["IUT-CONTRACT"]
    assert "evidence returned" in extra[0].message and extra[0] in s.findings
    assert failure.evidence == {"README.txt": failure.evidence["README.txt"]}
    assert b"no evidence" in failure.evidence["README.txt"]


def test_an_evidence_verb_that_raises_never_hides_the_failure():
    original = _original()
    _, failure = _fail(RuntimeError("capture buffer gone"))
    assert failure.findings == original                  # the original finding, alone
    assert str(failure) == "; ".join(str(f) for f in original)
    note = failure.evidence["README.txt"].decode()
    assert "RuntimeError: capture buffer gone" in note


def test_run_case_keeps_the_original_verdict_when_evidence_raises():
    base = load_iut("mutant:duplicate-top-accepted")

    def factory():
        iut = base()
        iut.evidence = lambda: (_ for _ in ()).throw(OSError("no relay"))
        return iut
    caps = base().capabilities()
    r = run_case(CASES["replay/window-edges"], factory, named("esp"), caps, seed=0,
                 strict=False, depth=DEPTHS["ci"])
    assert r.verdict is Verdict.FAIL and r.findings[0].requirement == "REPLAY-DUPLICATE-DROP"
    assert b"OSError: no relay" in r.evidence["README.txt"]


def test_evidence_crosses_the_worker_process():
    cls = type("Iut", (BadSender,), {"answer": {"packets.pcap": bytes(range(256)) * 64}})
    isolated = Isolated(cls, timeout=10.0)
    try:
        s = Session.open(isolated, named("esp"), label="t/esp#1")
        with pytest.raises(ConformanceFailure) as e:
            s.iut_send(0, 16)
        s.close()
    finally:
        isolated.shutdown()
    assert e.value.evidence == {"packets.pcap": bytes(range(256)) * 64}


def test_in_process_iuts_without_the_verb_change_nothing():
    r = run_case(CASES["replay/window-edges"], load_iut("mutant:duplicate-top-accepted"),
                 named("esp"), load_iut("reference")().capabilities(), seed=0,
                 strict=False, depth=DEPTHS["ci"])
    assert r.verdict is Verdict.FAIL and r.evidence is None
    assert "evidence" not in result_dict(r, "mutant:duplicate-top-accepted", 0)


# --- the results document -----------------------------------------------------------------
def test_the_results_document_names_the_evidence_folder(tmp_path):
    r = CaseResult("replay/window-edges", "replay", "esp", ("REPLAY-WINDOW-SIZE",),
                   Verdict.FAIL, message="m", session="replay/window-edges/esp#1",
                   evidence={"packets.pcap": b"p", "esp_sa": b"e", "../escape": b"x"})
    folder = write_evidence(tmp_path, r)
    assert folder == tmp_path / "evidence" / "esp" / "replay_window-edges"
    assert sorted(p.name for p in folder.iterdir()) == ["esp_sa", "packets.pcap"]
    assert not (tmp_path / "evidence" / "esp" / "escape").exists()
    write_json(tmp_path, [r], iut="x", seed=0, strict=False, depth="ci", profiles=["esp"])
    doc = schema.read_document(tmp_path / "results.json")
    assert doc["cases"][0]["evidence"] == "evidence/esp/replay_window-edges"
    assert evidence_path(CaseResult("a/../../b", "f", "../p", (), Verdict.FAIL)) == \
        "evidence/_p/a_.._.._b"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../evidence/esp/x", "evidence/../x/y",
                                 "evidence/esp", "evidence/esp/x/y", "evidence/./x", 3,
                                 "evidence/esp/\u00e9"])
def test_the_schema_refuses_an_evidence_path_outside_the_report(tmp_path, bad):
    r = CaseResult("c", "f", "esp", (), Verdict.FAIL, message="m")
    path = write_json(tmp_path, [r], iut="x", seed=0, strict=False, depth="ci",
                      profiles=["esp"])
    doc = json.loads(path.read_text())
    doc["cases"][0]["evidence"] = bad
    path.write_text(json.dumps(doc))
    with pytest.raises(schema.BadCase, match="evidence"):
        schema.read_document(path)
