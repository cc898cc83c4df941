"""The TUN-daemon adapter, for real: daemons in namespaces, packets through the relay.

The description-file and event-line tests need nothing. The others need root (network
namespaces, TUN devices) and run in CI, which is root: the reference daemon over the
wire through every suite, mutant daemons killed over the wire, a daemon that crashes,
hangs or cannot start, a vendor-style daemon without event lines or control, and a check
that nothing (namespace, process, work folder) is left after a run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.adapters import tun_daemon
from harness.adapters.tun_daemon import TunDaemonIut, close_rigs, reference_spec
from harness.contract import Capabilities
from harness.daemon import vendor
from harness.daemon.events import parse
from harness.daemon.watch import LineWatcher
from harness.engine.session import ConformanceFailure, IutLost, Session
from harness.net import leftovers
from spec_model import named
from spec_model.receiver import Dropped

ESPSPEC = [sys.executable, "-m", "harness.cli"]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, TUN)")


# --- event lines and the line watcher ------------------------------------------------------
def test_event_lines_parse():
    ev = parse("DROP spi=0x00001000 seq=7 reason=replay requirement=REPLAY-DUPLICATE-DROP\n")
    assert ev.kind == "DROP" and ev.get("reason") == "replay" and ev.number("seq") == 7
    assert ev.number("spi") == 0x1000
    assert parse("DROP spi=- seq=- reason=icv requirement=-").get("requirement") is None
    assert parse("OK SUB-SA 3").words == ("SUB-SA", "3")
    assert parse("hello world").kind == "OTHER"
    assert parse("").kind == "OTHER"


def test_line_watcher_sees_lines_written_before_and_after_the_wait():
    r, w = os.pipe()
    watcher = LineWatcher(os.fdopen(r, "rb"))
    try:
        os.write(w, b"READY generation=0\nnoise\n")
        assert watcher.wait(("READY",), 0, 2.0).number("generation") == 0
        mark = watcher.mark()
        assert watcher.wait(("DROP",), mark, 0.05) is None
        os.write(w, b"DROP reason=icv\n")
        ev = watcher.wait(("DROP",), mark, 2.0)
        assert ev is not None and ev.get("reason") == "icv"
        assert watcher.after(ev, mark) == watcher.mark()
    finally:
        os.close(w)
        deadline = time.monotonic() + 2
        while not watcher.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watcher.closed
        watcher.close()


# --- the daemon description ----------------------------------------------------------------
def _doc(**over) -> dict:
    doc = {"schema": "espspec-daemon/1", "name": "toy", "version": "1",
           "command": ["toyd", "--sa", "{sa_file}"],
           "capabilities": {"aeads": ["aes128gcm16"], "seq": ["32"], "modes": ["tunnel"]}}
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not None}


def test_description_reads_every_field():
    spec = vendor.parse(json.dumps(_doc(rekey="restart", event_lines=True, control=True,
                                        drop_wait=0.5, capabilities={
                                            "aeads": ["aes128gcm16", "aes256gcm16"],
                                            "max_sub_sas": 4, "replay_window": 128,
                                            "can_set_counters": True,
                                            "notes": ["a toy"]})))
    assert spec.command == ("toyd", "--sa", "{sa_file}")
    assert spec.argv("/x/sa.json") == ["toyd", "--sa", "/x/sa.json"]
    assert spec.rekey == "restart" and spec.event_lines and spec.control
    assert spec.drop_wait == 0.5 and spec.send_wait == 1.0
    caps = spec.capabilities
    assert caps.aeads == frozenset({"aes128gcm16", "aes256gcm16"})
    assert caps.max_sub_sas == 4 and caps.replay_window == 128 and caps.notes == ("a toy",)
    assert caps.framings == Capabilities().framings            # defaults stay


@pytest.mark.parametrize("doc, cls, words", [
    ("[1]", vendor.NotJson, "one JSON object"),
    ("{", vendor.NotJson, "not JSON"),
    (_doc(schema="espspec-daemon/2"), vendor.WrongSchema, "schema"),
    (_doc(command=None), vendor.MissingField, "command"),
    (_doc(colour="blue"), vendor.UnknownField, "colour"),
    (_doc(command="toyd {sa_file}"), vendor.WrongType, "array of strings"),
    (_doc(command=["toyd"]), vendor.BadCommand, "{sa_file}"),
    (_doc(command=[]), vendor.BadCommand, "empty"),
    (_doc(rekey="reboot"), vendor.BadValue, "sighup"),
    (_doc(encapsulation="tcp"), vendor.BadValue, "udp or esp"),
    (_doc(encapsulation="esp", capabilities={"framings": ["esp", "psp"]}),
     vendor.BadCapability, "classic ESP only"),
    (_doc(drop_wait=0), vendor.BadValue, "positive"),
    (_doc(event_lines="yes"), vendor.WrongType, "event_lines"),
    (_doc(capabilities={"aead": ["x"]}), vendor.BadCapability, "not a capability"),
    (_doc(capabilities={"aeads": "aes128gcm16"}), vendor.BadCapability, "array"),
    (_doc(capabilities={"max_sub_sas": 4}), vendor.BadCapability, "SUB-SA"),
    (_doc(capabilities={"can_set_counters": True}), vendor.BadCapability, "SET-COUNTER"),
    (_doc(capabilities={"replay_window": -1}), vendor.BadCapability, "integer"),
])
def test_description_faults_are_one_line_each(doc, cls, words):
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(cls) as e:
        vendor.parse(text, "toy.json")
    message = str(e.value)
    assert message.startswith("toy.json") and "\n" not in message and words in message


def test_description_file_not_found(tmp_path):
    with pytest.raises(vendor.Unreadable, match="cannot read"):
        vendor.read(tmp_path / "none.json")


# --- over the wire -------------------------------------------------------------------------
def _our_namespaces() -> list[str]:
    return [left.name for left in leftovers.find(f"espspec-{os.getpid()}-")]


@pytest.fixture
def rigs():
    """Rigs made in this test's process are closed (daemons, namespaces) on every path."""
    yield
    close_rigs()
    assert _our_namespaces() == []


def _spec(**over) -> vendor.DaemonSpec:
    from dataclasses import replace
    return replace(reference_spec(), **over)


@root_only
def test_reference_daemon_sessions_rekey_and_steer(rigs):
    factory = lambda: TunDaemonIut(reference_spec())     # noqa: E731
    s = Session.open(factory, named("esp-subsa-spi"), label="t/steer")
    daemon = s.iut.rig_.child.pid
    for sub in (0, 3, 1, 3):                            # the judge checks sub-SA and SN
        wire = s.iut_send(sub, 40)
        assert isinstance(wire, bytes)
    s.peer_send(2, 30)
    s.deliver(0)
    assert s.answers[-1].startswith("unprotect: Delivered(sub-SA 2, SN 1")
    assert s.rekey()
    assert isinstance(s.iut_send(1, 10), bytes)          # SN 1 again on the new SA
    s.close()
    t = Session.open(factory, named("eesp-v0-transport"), label="t/next")   # another port
    assert t.iut.rig_.child.pid != daemon
    second = t.iut.rig_.child.pid
    t.iut_send(0, 12)
    t.peer_send(0, 12)
    t.deliver(0)
    t.close()
    u = Session.open(factory, named("eesp-v0-transport"), label="t/again")  # SIGHUP only
    assert u.iut.rig_.child.pid == second
    assert u.jump_iut(0, 1000) and isinstance(u.iut_send(0, 5), bytes)    # SET-COUNTER
    u.close()


@root_only
def test_a_killed_daemon_is_iut_crash(rigs):
    s = Session.open(lambda: TunDaemonIut(reference_spec()), named("esp"), label="t/kill")
    os.kill(s.iut.rig_.child.pid, signal.SIGKILL)
    s.iut.rig_.child.proc.wait()
    with pytest.raises(ConformanceFailure) as e:
        s.iut_send(0, 10)
    assert e.value.findings[0].requirement == "IUT-CRASH"
    assert "killed by signal 9" in str(e.value)


@root_only
def test_a_daemon_that_cannot_start_or_never_gets_ready(rigs):
    broken = _spec(name="broken", command=("sh", "-c", "echo no TUN here >&2; exit 1", "x",
                                           "{sa_file}"))
    with pytest.raises(ConformanceFailure) as e:
        Session.open(lambda: TunDaemonIut(broken), named("esp"), label="t/broken")
    assert e.value.findings[0].requirement == "IUT-CRASH"
    assert "exited with status 1: no TUN here" in str(e.value)
    silent = _spec(name="silent", ready_timeout=0.5,
                   command=("sh", "-c", "exec sleep 30", "x", "{sa_file}"))
    t0 = time.monotonic()
    with pytest.raises(IutLost) as e:
        Session.open(lambda: TunDaemonIut(silent), named("esp"), label="t/silent")
    assert e.value.failure.findings[0].requirement == "IUT-HANG"
    assert time.monotonic() - t0 < 5
    rig = tun_daemon._mine()[("silent", silent.command)]
    pid = rig.child.pid
    close_rigs()
    assert not os.path.exists(f"/proc/{pid}")            # stopped by PID and reaped


@root_only
def test_a_daemon_without_event_lines_is_judged_by_a_bounded_wait(rigs):
    """A vendor daemon that prints nothing espspec reads and takes no control lines: a
    drop is only known by silence (drop_wait), with no reason."""
    quiet = _spec(name="quiet", event_lines=False, control=False, drop_wait=0.2,
                  command=tuple(w for w in reference_spec().command if w != "--control"),
                  capabilities=Capabilities(aeads=frozenset({"aes128gcm16"})))
    s = Session.open(lambda: TunDaemonIut(quiet), named("esp"), label="t/quiet")
    wire = s.peer_send(0, 20)
    s.deliver(0)
    assert s.answers[-1].startswith("unprotect: Delivered")
    t0 = time.monotonic()
    outcome = s.iut.unprotect(wire)                       # a replay: silence
    assert isinstance(outcome, Dropped) and outcome.reason is None
    assert 0.2 <= time.monotonic() - t0 < 1.0
    s.close()


@root_only
def test_a_worker_forked_from_a_process_with_a_rig_builds_its_own(rigs):
    """The pytest plugin builds in-process and isolated factories in one process: the
    worker must not take over (and kill) the parent's daemon."""
    from harness.engine.isolation import Isolated, shutdown_all
    factory = lambda: TunDaemonIut(reference_spec())     # noqa: E731
    here = Session.open(factory, named("esp"), label="t/parent")
    parent_daemon = here.iut.rig_.child.pid
    try:
        there = Session.open(Isolated(factory, 10.0), named("esp"), label="t/worker")
        there.iut_send(0, 10)
        there.close()
        here.iut_send(0, 10)                              # the parent's daemon still works
        assert here.iut.rig_.child.pid == parent_daemon and here.iut.rig_.child.alive()
        here.close()
    finally:
        shutdown_all()


@root_only
def test_a_daemon_on_raw_esp(rigs):
    """"encapsulation": "esp": the SA file says so, the relay carries protocol 50, the
    suites' verbs work the same."""
    raw = _spec(name="raw", encapsulation="esp")
    s = Session.open(lambda: TunDaemonIut(raw), named("esp-esn"), label="t/raw")
    assert s.iut.rig_.port is None
    wire = s.iut_send(0, 30)
    assert s.iut.rig_.relay.seen[-1].kind == "esp" and isinstance(wire, bytes)
    frame = s.iut.rig_.relay.seen[-1].frame
    assert frame[14 + 9] == 50                              # IPv4 protocol 50, no UDP
    w = s.peer_send(0, 30)
    s.deliver(0)
    assert isinstance(s.iut.unprotect(w), Dropped)           # the replay, reported
    s.close()


def _run(tmp_path, *args) -> tuple[int, dict, str]:
    report = tmp_path / "report"
    env = dict(os.environ, TMPDIR=str(tmp_path))
    p = subprocess.run([*ESPSPEC, "run", "-q", "--report", str(report), *args],
                       capture_output=True, text=True, env=env, timeout=900)
    results = json.loads((report / "results.json").read_text())
    return p.returncode, results, p.stdout + p.stderr


def _nothing_left(tmp_path) -> None:
    """No work folder, no process that ran from one, no namespace of a dead run."""
    assert not list(Path(tmp_path).glob("espspec-*"))
    mine = str(tmp_path)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            seen = Path(f"/proc/{pid}/cmdline").read_bytes() + \
                Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        assert mine.encode() not in seen.replace(b"TMPDIR=" + mine.encode(), b""), \
            f"process {pid} of the run is still there"
    assert [left.name for left in leftovers.find() if not left.owner_alive] == []


@root_only
def test_every_suite_passes_against_the_reference_daemon_over_the_wire(tmp_path):
    rc, results, out = _run(tmp_path, "--iut", "reference-daemon")
    verdicts = {(c["profile"], c["case"]): c["verdict"] for c in results["cases"]}
    assert rc == 0, out[-3000:]
    assert "FAIL" not in verdicts.values()
    assert sum(v == "PASS" for v in verdicts.values()) >= 200
    # every profile the model speaks, over UDP: sub-SAs, EESP, transport, PSP
    assert {p for p, _ in verdicts} >= {"esp", "esp-subsa-spi", "eesp-v0",
                                        "eesp-v0-transport", "psp-v0"}
    _nothing_left(tmp_path)


@root_only
@pytest.mark.parametrize("mutant, suite, requirement, strict", [
    ("duplicate-top-accepted", "replay", "REPLAY-DUPLICATE-DROP", False),
    ("esp-zero-padding", "wire", "PAD-CONTENT-SEND", False),
    # a window of W + 1 is a receiver's choice (RFC 4303 §3.4.3): fails under --strict only
    ("window-too-wide", "replay", "REPLAY-WINDOW-EXACT", True),
])
def test_a_mutant_daemon_is_killed_over_the_wire(tmp_path, mutant, suite, requirement,
                                                 strict):
    rc, results, out = _run(tmp_path, "--iut", f"mutant-daemon:{mutant}", "--profile",
                            "esp", "--suite", suite, *(["--strict"] if strict else []))
    assert rc != 0
    verdict = "NON-STRICT" if strict else "FAIL"
    failed = {f["requirement"] for c in results["cases"] if c["verdict"] == verdict
              for f in c["findings"]}
    assert requirement in failed, out[-3000:]
    assert results["record"]["iut_name"] == f"reference-daemon/{mutant}"
    _nothing_left(tmp_path)


def test_an_unknown_mutant_daemon_is_one_line(tmp_path):
    p = subprocess.run([*ESPSPEC, "run", "--iut", "mutant-daemon:no-such"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "unknown mutant 'no-such'" in p.stderr and "Traceback" not in p.stderr


@root_only
def test_the_example_description_runs_a_session(rigs, monkeypatch):
    """examples/reference-daemon.json, the vendor's way in, loads and carries traffic
    (its command is `espspec daemon ...`, found on PATH as in an activated venv)."""
    from harness.loader import load_iut
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep +
                       os.environ.get("PATH", ""))
    example = Path(__file__).resolve().parent.parent / "examples" / "reference-daemon.json"
    factory = load_iut(f"daemon:{example}")
    s = Session.open(factory, named("esp-subsa-seq"), label="t/example")
    assert s.caps.max_sub_sas == 65536 and s.iut.name == "reference-daemon (described)"
    s.iut_send(1, 20)
    wire = s.peer_send(0, 20)
    s.deliver(0)
    assert isinstance(s.iut.unprotect(wire), Dropped)          # a replay, reported
    s.close()
