"""A misbehaving IUT is a finding, never the end of espspec: hangs, crashes, exceptions,
answers outside the contract, nondeterminism, state that outlives the IUT object, and
signals in the middle of a run. Each runs the real ``espspec`` command on an adapter of
``tests/misbehaving.py`` and checks the exit status, stderr and results.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.engine.runner import CaseContext
from suites import FAMILIES, plan
from harness.loader import load_iut
from spec_model import named

ROOT = Path(__file__).resolve().parent.parent
ESPSPEC = str(Path(sys.executable).parent / "espspec")


def espspec(*args: str, pids: Path | None = None, timeout: float = 240):
    env = dict(os.environ)
    if pids is not None:
        env["ESPSPEC_TEST_PIDS"] = str(pids)
    return subprocess.run([ESPSPEC, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def findings(doc: dict) -> list[dict]:
    return [f | {"case": c["case"]} for c in doc["cases"] for f in c["findings"]]


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for a parent that is not ours."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def assert_clean(run, pids: Path | None = None) -> None:
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout, run.stderr
    if pids is not None and pids.exists():
        left = [int(p) for p in pids.read_text().split() if not gone(int(p))]
        assert not left, f"processes left behind: {left}"


def test_hanging_verb_is_iut_hang_and_the_run_goes_on(tmp_path):
    pids = tmp_path / "pids"
    run = espspec("run", "--iut", "tests.misbehaving:HangingUnprotect", "--profile", "esp",
                  "--suite", "replay", "--timeout", "0.5", "--report", str(tmp_path),
                  pids=pids)
    assert run.returncode == 1, run.stderr
    assert_clean(run, pids)
    doc = results(tmp_path)
    ran = [c for c in doc["cases"] if c["verdict"] != "UNSUPPORTED"]
    assert len(doc["cases"]) == len(plan(["replay"])) and ran   # every case ran, none lost
    for c in ran:                                         # each one met the hang
        assert c["verdict"] == "FAIL", c
        assert c["findings"][0]["requirement"] == "IUT-HANG", c
        assert "unprotect did not answer within 0.5 s" in c["findings"][0]["message"]
        assert c["steps"] and "replay" in c
    assert len(pids.read_text().split()) == len(ran)      # a fresh worker each case


def test_hang_kills_what_the_iut_started(tmp_path):
    pids = tmp_path / "pids"
    run = espspec("run", "--iut", "tests.misbehaving:HangingWithDaemon", "--profile",
                  "esp", "--suite", "nonce", "--timeout", "0.5", "--report", str(tmp_path),
                  pids=pids)
    assert run.returncode == 1
    assert_clean(run, pids)
    assert len(pids.read_text().split()) >= 4             # workers and their daemons
    assert {f["requirement"] for f in findings(results(tmp_path))} == {"IUT-HANG"}


@pytest.mark.parametrize("adapter, requirement, text", [
    ("SegfaultInProtect", "IUT-CRASH", "during protect: killed by SIGSEGV"),
    ("ExitInInstall", "IUT-CRASH", "during install: exited with status 3"),
    ("WrongTypes", "IUT-CONTRACT", "protect returned str where bytes or Refused were due"),
    ("UnsendableAnswer", "IUT-CONTRACT", "unprotect returned generator"),
])
def test_crashes_and_contract_violations_are_findings(tmp_path, adapter, requirement, text):
    run = espspec("run", "--iut", f"tests.misbehaving:{adapter}", "--profile", "esp",
                  "--timeout", "5", "--report", str(tmp_path))
    assert run.returncode == 1, run.stderr
    assert_clean(run)
    doc = results(tmp_path)
    assert len(doc["cases"]) == len(plan(FAMILIES))       # the run went on to the end
    hits = [f for f in findings(doc) if f["requirement"] == requirement]
    assert hits and any(text in f["message"] for f in hits), findings(doc)[:3]
    failing = [c for c in doc["cases"] if c["verdict"] == "FAIL"]
    assert all("replay" in c for c in failing if c.get("steps"))


def test_wrong_field_in_delivered_names_the_field(tmp_path):
    run = espspec("run", "--iut", "tests.misbehaving:WrongTypes", "--profile", "esp",
                  "--suite", "replay", "--report", str(tmp_path))
    assert run.returncode == 1
    assert any("unprotect returned a Delivered with a bad payload" in f["message"]
               for f in findings(results(tmp_path)))


def test_raising_constructor_is_a_finding_with_results(tmp_path):
    run = espspec("run", "--iut", "tests.misbehaving:RaisingConstructor",
                  "--report", str(tmp_path))
    assert run.returncode == 1
    assert_clean(run)
    doc = results(tmp_path)
    (case,) = doc["cases"]
    assert case["case"] == "iut/probe" and case["verdict"] == "FAIL"
    assert case["findings"][0]["requirement"] == "IUT-NO-CRASH"
    assert "constructor raised RuntimeError: cannot open /dev/esp0" in case["message"]


def test_raising_constructor_in_process_too(tmp_path):
    run = espspec("run", "--iut", "tests.misbehaving:RaisingConstructor", "--in-process",
                  "--report", str(tmp_path))
    assert run.returncode == 1
    assert_clean(run)
    assert "constructor raised RuntimeError" in results(tmp_path)["cases"][0]["message"]


def test_nondeterministic_iut_is_a_finding_with_both_answers(tmp_path):
    run = espspec("run", "--iut", "tests.misbehaving:Nondeterministic", "--profile", "esp",
                  "--suite", "replay", "--report", str(tmp_path))
    assert run.returncode == 1
    assert_clean(run)
    lockstep = next(c for c in results(tmp_path)["cases"] if c["case"] == "replay/lockstep")
    f = lockstep["findings"][0]
    assert f["requirement"] == "IUT-NONDETERMINISTIC", lockstep
    assert "the first time" in f["message"] and "when run again" in f["message"]


def test_state_that_outlives_the_object_does_not_leak_between_sessions(tmp_path):
    run = espspec("run", "--iut", "tests.misbehaving:StateOutlivesObject", "--profile",
                  "esp,esp-subsa-spi", "--suite", "replay,wire", "--report", str(tmp_path))
    assert run.returncode == 0, run.stdout[-2000:]
    assert_clean(run)
    verdicts = {c["verdict"] for c in results(tmp_path)["cases"]}
    assert verdicts <= {"PASS", "UNSUPPORTED", "INFO"}, verdicts


def test_sessions_have_sas_of_their_own_and_reruns_the_same():
    def sas(seed):
        ctx = CaseContext(load_iut("reference"), named("esp-subsa-spi"), None, seed=seed,
                          case="replay/x")
        out = []
        for _ in range(3):
            s = ctx.session()
            out.append((s.label, s.outbound, s.inbound))
            s.close()
        return out
    first, again, other = sas(0), sas(0), sas(1)
    assert first == again                                  # deterministic from the seed
    spis = [sa.spi for _, o, i in first + other for sa in (o, i)]
    keys = [sa.keymat for _, o, i in first + other for sa in (o, i)]
    assert len(set(spis)) == len(spis) and len(set(keys)) == len(keys)
    for spi in spis:                                       # aligned for 4 sub-SAs, not reserved
        assert spi % 4 == 0 and spi >= 0x10000 and spi < 1 << 31


def _interrupt(tmp_path, sig):
    pids = tmp_path / "pids"
    env = dict(os.environ, ESPSPEC_TEST_PIDS=str(pids))
    proc = subprocess.Popen([ESPSPEC, "run", "--iut", "tests.misbehaving:SlowReference",
                             "--report", str(tmp_path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if len(results(tmp_path)["cases"]) >= 1:
                    break
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err, pids


@pytest.mark.parametrize("sig, name", [(signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")])
def test_signal_ends_the_run_with_130_and_incomplete_results(tmp_path, sig, name):
    code, out, err, pids = _interrupt(tmp_path, sig)
    assert code == 130, err
    lines = err.strip().splitlines()
    assert len([ln for ln in lines if "interrupted" in ln]) == 1 and "Traceback" not in err
    assert f"interrupted by {name}" in lines[-1]
    doc = results(tmp_path)
    assert doc["complete"] is False and name in doc.get("incomplete_reason", "")
    assert len(doc["cases"]) >= 1 and all(c["verdict"] for c in doc["cases"])
    left = [int(p) for p in pids.read_text().split() if not gone(int(p))]
    assert not left, left
    assert not list(tmp_path.glob("*.tmp*"))


def test_exit_status_3_when_nothing_was_tested(tmp_path):
    run = espspec("run", "--iut", "scapy", "--profile", "eesp-v0", "--report", str(tmp_path))
    assert run.returncode == 3, run.stdout
    assert "nothing was tested" in run.stderr
    assert {c["verdict"] for c in results(tmp_path)["cases"]} == {"UNSUPPORTED"}


def test_exit_status_0_and_version():
    run = espspec("run", "--iut", "reference", "--profile", "esp", "--suite", "wire")
    assert run.returncode == 0, run.stdout
    version = espspec("--version")
    assert version.returncode == 0 and version.stdout.startswith("espspec ")


@pytest.mark.parametrize("args, text", [
    (["--profile", ""], "empty name"),
    (["--suite", ""], "empty name"),
    (["--profile", "esp,"], "empty name"),
    (["--profile", "nope"], "pairwise"),
    (["--timeout", "0"], "positive"),
    (["--timeout", "-1"], "positive"),
])
def test_bad_usage_is_one_line_and_exit_2(args, text):
    run = espspec("run", "--iut", "reference", *args)
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and text in run.stderr, run.stderr


def test_worked_example_loads_from_the_checkout():
    run = espspec("run", "--iut", "examples.toy_iut:ToyEsp", "--profile", "esp",
                  "--suite", "wire")
    assert run.returncode == 0, run.stderr


def test_closed_pipe_is_quiet():
    run = subprocess.run(f"'{ESPSPEC}' mutants | head -1", shell=True, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.stderr == "", run.stderr


def test_no_progress_lines_when_stderr_is_not_a_terminal():
    run = espspec("run", "--iut", "reference", "--profile", "esp", "--suite", "wire")
    assert "[#" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_replay_reproduces_a_crash_before_any_step(tmp_path):
    run = espspec("run", "--iut", "tests.misbehaving:ExitInInstall", "--profile", "esp",
                  "--suite", "wire", "--report", str(tmp_path))
    assert run.returncode == 1
    again = espspec("replay", str(tmp_path / "results.json"), "--case", "wire/lockstep",
                    "--profile", "esp", "--iut", "tests.misbehaving:ExitInInstall")
    assert again.returncode == 1, again.stderr
    assert "IUT-CRASH" in again.stdout and "reproduced" in again.stdout
    assert_clean(again)


def test_replay_of_a_hang_is_bounded_by_the_deadline(tmp_path):
    run = espspec("run", "--iut", "tests.misbehaving:HangingUnprotect", "--profile", "esp",
                  "--suite", "replay", "--timeout", "0.5", "--report", str(tmp_path))
    assert run.returncode == 1
    case = next(c for c in results(tmp_path)["cases"] if c["verdict"] == "FAIL")
    again = espspec("replay", str(tmp_path / "results.json"), "--case", case["case"],
                    "--profile", "esp", "--iut", "tests.misbehaving:HangingUnprotect",
                    "--timeout", "0.5")
    assert again.returncode == 1 and "IUT-HANG" in again.stdout, again.stdout
    assert_clean(again)


def test_pytest_plugin_isolates_the_iut_too():
    run = subprocess.run([sys.executable, "-m", "pytest", "--pyargs",
                          "suites.test_conformance", "--iut",
                          "tests.misbehaving:SegfaultInProtect", "--profile", "esp", "-q",
                          "-p", "no:cacheprovider", "--espspec-suite", "nonce"],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 1, run.stdout[-2000:]          # failures, not a dead pytest
    assert "IUT-CRASH" in run.stdout and "killed by SIGSEGV" in run.stdout


def test_crash_in_a_pipelined_run_of_packets(tmp_path):
    run = espspec("run", "--iut", "tests.misbehaving:CrashOnFifthPacket", "--profile", "esp",
                  "--suite", "replay", "--report", str(tmp_path))
    assert run.returncode == 1
    assert_clean(run)
    doc = results(tmp_path)
    held = [c for c in doc["cases"] if c.get("steps") and any(
        s["step"] == "hold_past_window" for s in c["steps"])]
    assert held, "no failing case went through hold_past_window"
    for c in held:
        assert c["findings"][0]["requirement"] == "IUT-CRASH", c["findings"][0]
        assert "during unprotect: exited with status 9" in c["findings"][0]["message"]


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CI is root)")
def test_namespaces_made_in_a_killed_worker_are_removed(tmp_path):
    pids = tmp_path / "pids"
    run = espspec("run", "--iut", "tests.misbehaving:NamespacesThenHang", "--profile", "esp",
                  "--suite", "nonce", "--timeout", "1", "--report", str(tmp_path), pids=pids)
    assert run.returncode == 1, run.stderr
    assert_clean(run)
    prefixes = Path(str(pids) + ".prefixes").read_text().split()
    assert prefixes                                       # the adapter really made some
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    left = [p for p in prefixes if p in listed]
    assert not left, f"namespaces left behind: {left}"


@pytest.mark.parametrize("args", [["run"], ["check-pcap", "x.pcap", "--jobs", "x"],
                                  ["nosuch"], ["run", "--iut", "reference", "--seed", "x"]])
def test_argparse_errors_are_one_line_too(args):
    run = espspec(*args)
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and "--help" in run.stderr, run.stderr
