"""The results document: hostile and damaged files, safe replay, the run record, atomic
writes.

Hostile files go through the real ``espspec replay`` in a child process with its address
space capped, so a traceback, a huge allocation or a call into the IUT a file names
(``os:abort`` ends the child with SIGABRT, status -6) shows as what it is, not as exit 2.
"""

from __future__ import annotations

import copy
import inspect
import json
import platform
import re
import resource
import shutil
import subprocess
import sys
from dataclasses import fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pytest

from harness.cli.replay import entry_point_iut
from harness.contract import Capabilities
from harness.engine.judge import Finding, Verdict
from harness.engine.runner import CaseResult
from harness.engine.session import VERBS, Session
from harness.results import schema
from harness.results.document import SCHEMA, UnknownCase, load_steps, write_json
from harness.results.record import LIBRARIES, RunRecord
from spec_model import Profile, named
from spec_model.errors import EspSpecError

ROOT = Path(__file__).resolve().parent.parent
SCAPY_V1 = ROOT / "tests" / "data" / "results-v1-scapy.json"   # as published at a693f22
MUTANT = "mutant:duplicate-top-accepted"
MEMORY_CAP = 2 << 30          # address space of a child espspec (bytes)


def espspec(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``espspec ARGS`` in a child process with its address space capped."""
    exe = Path(sys.executable).parent / "espspec"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, preexec_fn=cap)


def assert_refused(proc: subprocess.CompletedProcess, needle: str = "") -> str:
    """Exit status 2, exactly one line on stderr, no traceback; returns that line."""
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    assert "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err[-2000:]
    assert len(lines[0]) < 600
    assert needle in lines[0], lines[0]
    return lines[0]


# --- a real results file, from a seeded-bug mutant ------------------------------------------

@pytest.fixture(scope="module")
def mutant_run(tmp_path_factory) -> tuple[Path, dict, str]:
    """(results.json of a run against a mutant, its document, a failing case with steps)."""
    folder = tmp_path_factory.mktemp("mutant-run")
    proc = espspec("run", "--iut", MUTANT, "--profile", "esp", "--suite", "replay",
                   "--report", str(folder), "-q")
    assert proc.returncode == 1, proc.stderr[-2000:]
    path = folder / "results.json"
    doc = json.loads(path.read_text())
    failing = [c for c in doc["cases"] if c["verdict"] == "FAIL" and c.get("steps")]
    assert failing
    return path, doc, failing[0]["case"]


def hostile(tmp_path: Path, doc: object | None = None, raw: bytes | None = None) -> Path:
    path = tmp_path / "results.json"
    path.write_bytes(raw if raw is not None else json.dumps(doc).encode())
    return path


def test_valid_file_replays_and_reproduces(mutant_run):
    path, doc, case = mutant_run
    assert doc["schema"] == SCHEMA == "espspec-results/2" and doc["complete"] is True
    entry = next(c for c in doc["cases"] if c["case"] == case)
    assert f"--iut {MUTANT}" in entry["replay"]
    proc = espspec("replay", str(path), "--case", case, "--profile", "esp")
    assert proc.returncode == 1, proc.stderr
    assert "reproduced" in proc.stdout and "Traceback" not in proc.stderr


def test_results_of_the_run_validate(mutant_run):
    path, doc, _ = mutant_run
    assert schema.read_document(path) == doc
    assert not [p for p in path.parent.iterdir() if p.name != "results.json"]


def test_file_naming_os_abort_is_refused_without_iut(mutant_run, tmp_path):
    path, doc, case = mutant_run
    bad = copy.deepcopy(doc)
    bad["iut"] = "os:abort"
    file = hostile(tmp_path, bad)
    proc = espspec("replay", str(file), "--case", case, "--profile", "esp")
    assert proc.returncode != -6, "espspec called os.abort from a results file"
    assert "--iut" in assert_refused(proc, "os:abort")
    # named on the command line, another IUT is used and the file's is never touched
    proc = espspec("replay", str(file), "--case", case, "--profile", "esp", "--iut", MUTANT)
    assert proc.returncode == 1 and "reproduced" in proc.stdout, proc.stderr


def test_module_factory_in_a_file_is_refused_even_when_harmless(mutant_run, tmp_path):
    path, doc, case = mutant_run
    bad = copy.deepcopy(doc)
    bad["iut"] = "harness.adapters.reference:ReferenceIut"
    proc = espspec("replay", str(hostile(tmp_path, bad)), "--case", case, "--profile", "esp")
    assert_refused(proc, "pass --iut")


def _with_steps(doc: dict, case: str, steps: list) -> dict:
    bad = copy.deepcopy(doc)
    for c in bad["cases"]:
        if c["case"] == case and c["profile"] == "esp":
            c["steps"] = steps
    return bad


HOSTILE_STEPS = {
    "unknown verb": ([{"step": "system", "cmd": "rm -rf /"}], "unknown step"),
    "absurd size": ([{"step": "iut_send", "sub_sa": 0, "size": 10 ** 12}], "size"),
    "absurd sub-SA": ([{"step": "peer_send", "sub_sa": 1 << 40, "size": 8}], "sub_sa"),
    "absurd index": ([{"step": "peer_send", "sub_sa": 0, "size": 8},
                      {"step": "deliver", "index": 1 << 200}], "index"),
    "string size": ([{"step": "iut_send", "sub_sa": 0, "size": "8"}], "integer"),
    "bool size": ([{"step": "iut_send", "sub_sa": 0, "size": True}], "integer"),
    "int v6": ([{"step": "iut_send", "sub_sa": 0, "size": 8, "v6": 1}], "v6"),
    "missing argument": ([{"step": "iut_send", "sub_sa": 0}], "size"),
    "extra argument": ([{"step": "deliver", "index": 0, "self": 1}], "no argument"),
    "step not an object": (["deliver"], "object"),
    "steps not a list": ({"step": "deliver"}, "array"),
    "bad how": ([{"step": "peer_send", "sub_sa": 0, "size": 8},
                 {"step": "deliver_changed", "index": 0, "how": "__class__", "value": 1}],
                "how"),
    "10 MB label": ([{"step": "deliver_bytes", "wire": "00", "label": "x" * 10_000_000}],
                    "label"),
    "10 MB wire": ([{"step": "deliver_bytes", "wire": "ab" * 5_000_000}], "wire"),
    "odd hex": ([{"step": "deliver_bytes", "wire": "abc"}], "hex"),
    "not hex": ([{"step": "deliver_bytes", "wire": "zz"}], "hex"),
    "nothing in flight": ([{"step": "deliver", "index": 0}], "in flight"),
    "counter of no sub-SA": ([{"step": "jump_iut", "sub_sa": 7, "value": 5}], "sub-SA"),
    "a million steps": ([{"step": "drop", "index": 0}] * 1_000_000, "steps"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_STEPS))
def test_hostile_steps_are_one_line_exit_2(name, mutant_run, tmp_path):
    path, doc, case = mutant_run
    steps, needle = HOSTILE_STEPS[name]
    file = hostile(tmp_path, _with_steps(doc, case, steps))
    line = assert_refused(espspec("replay", str(file), "--case", case, "--profile", "esp"),
                          needle)
    assert "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" not in line


def _damaged(doc: dict) -> dict[str, tuple[bytes, str]]:
    text = json.dumps(doc).encode()
    v2 = {k: v for k, v in doc.items() if k != "complete"}
    return {
        "truncated": (text[: len(text) // 2], "not JSON"),
        "empty": (b"", "not JSON"),
        "not JSON": (b"\x89PNG\r\n\x1a\n\x00\x00", "not JSON"),
        "a JSON list": (b"[1, 2, 3]", "not a results document"),
        "a JSON string": (b'"espspec-results/2"', "not a results document"),
        "wrong schema": (json.dumps({**doc, "schema": "espspec-results/99"}).encode(),
                         "schema"),
        "no schema": (json.dumps({k: v for k, v in doc.items() if k != "schema"}).encode(),
                      "schema"),
        "v2 without complete": (json.dumps(v2).encode(), "complete"),
        "seed a string": (json.dumps({**doc, "seed": "0"}).encode(), "seed"),
        "strict a number": (json.dumps({**doc, "strict": 0}).encode(), "strict"),
        "cases an object": (json.dumps({**doc, "cases": {}}).encode(), "cases"),
        "case not an object": (json.dumps({**doc, "cases": [7]}).encode(), "object"),
        "unknown verdict": (json.dumps({**doc, "cases": [
            {**doc["cases"][0], "verdict": "MAYBE"}]}).encode(), "verdict"),
        "NaN seconds": (text.replace(b'"seconds": ', b'"seconds": NaN, "x": ', 1), "NaN"),
        "huge integer": (json.dumps({**doc, "seed": 0}).encode().replace(
            b'"seed": 0', b'"seed": ' + b"9" * 5000), "not JSON"),
        "deeply nested": (b'{"schema": "espspec-results/2", "x": ' + b"[" * 200_000
                          + b"]" * 200_000 + b"}", "nested"),
        "a huge list": (b"[" + b"0," * 5_000_000 + b"0]", "JSON values"),
        "invalid UTF-8": (text.replace(b'"esp"', b'"\xff\xfe"', 1), "not JSON"),
    }


@pytest.mark.parametrize("name", ["truncated", "empty", "not JSON", "a JSON list",
                                  "a JSON string", "wrong schema", "no schema",
                                  "v2 without complete", "seed a string", "strict a number",
                                  "cases an object", "case not an object", "unknown verdict",
                                  "NaN seconds", "huge integer", "deeply nested",
                                  "a huge list", "invalid UTF-8"])
def test_damaged_files_are_one_line_exit_2(name, mutant_run, tmp_path):
    path, doc, case = mutant_run
    raw, needle = _damaged(doc)[name]
    file = hostile(tmp_path, raw=raw)
    assert_refused(espspec("replay", str(file), "--case", case, "--profile", "esp"), needle)


def test_missing_case_and_missing_file_are_one_line(mutant_run, tmp_path):
    path, _, _ = mutant_run
    assert_refused(espspec("replay", str(path), "--case", "no/such", "--profile", "esp"),
                   "no case no/such")
    assert_refused(espspec("replay", str(tmp_path / "nope.json"), "--case", "x",
                           "--profile", "esp"), "No such file")


def test_version_1_file_still_replays(tmp_path):
    file = tmp_path / "results.json"
    shutil.copy(SCAPY_V1, file)
    assert json.loads(file.read_text())["schema"] == "espspec-results/1"
    loaded = load_steps(file, "replay/lockstep", "esp")
    assert loaded.session == "" and loaded.steps and loaded.iut == "scapy"
    proc = espspec("replay", str(file), "--case", "replay/lockstep", "--profile", "esp",
                   "--iut", "scapy")
    # recorded as a FAIL of REPLAY-TOO-OLD-DROP: SN 1 delivered with T = 65, W = 64. A
    # window of W + 1 is a receiver's choice (RFC 4303 §3.4.3), judged espspec-strict now
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "NON-STRICT REPLAY-WINDOW-EXACT: packet SN 1 held back 64 packets" in proc.stdout
    # a variant profile (ran_profile) from a version-1 file
    loaded = load_steps(file, "replay/large-window", "esp")
    assert loaded.profile.window == 1 << 20 and loaded.profile.name == "esp+"


def test_published_reports_validate():
    for folder in ("scapy-2.8.0", "reference"):
        doc = schema.read_document(ROOT / "reports" / folder / "results.json")
        assert doc["schema"] == schema.SCHEMA_V2 and doc["complete"] is True
        assert doc["record"]["iut"] == doc["iut"]


# --- the schema module on its own -----------------------------------------------------------

def test_step_table_covers_exactly_the_engine_verbs():
    assert set(schema.STEP_ARGS) == set(VERBS)


def test_step_table_matches_the_session_methods():
    for verb, table in schema.STEP_ARGS.items():
        params = dict(inspect.signature(getattr(Session, verb)).parameters)
        params.pop("self")
        assert set(params) == set(table), verb
        for name, p in params.items():
            assert table[name].required == (p.default is inspect.Parameter.empty), (verb, name)


def test_every_profile_axis_is_checked():
    assert set(schema.AXES) == {f.name for f in fields(Profile)}
    assert all(check is not None for check in schema.AXES.values())


def test_error_classes_are_espspec_errors():
    for cls in (schema.ResultsTooLarge, schema.NotJson, schema.WrongSchema, schema.BadDocument,
                schema.BadCase, schema.BadStep, UnknownCase):
        assert issubclass(cls, EspSpecError)
    assert len({schema.ResultsTooLarge, schema.NotJson, schema.WrongSchema,
                schema.BadDocument, schema.BadCase, schema.BadStep}) == 6


def minimal_doc(steps: list | None = None, **case) -> dict:
    entry = {"case": "replay/lockstep", "family": "replay", "profile": "esp",
             "requirements": ["REPLAY-DUPLICATE-DROP"], "verdict": "FAIL", "message": "m",
             "seconds": 0.1, "findings": [], **case}
    if steps is not None:
        entry["steps"] = steps
    return {"schema": SCHEMA, "iut": "reference", "seed": 0, "strict": False, "depth": "ci",
            "profiles": ["esp"], "complete": True, "record": None, "summary": {"FAIL": 1},
            "cases": [entry]}


def parse(doc) -> dict:
    return schema.parse_document(json.dumps(doc).encode())


@pytest.mark.parametrize("doc,error", [
    (minimal_doc([{"step": "fork"}]), schema.BadStep),
    (minimal_doc([{"step": "iut_send", "sub_sa": 0, "size": 10 ** 12}]), schema.BadStep),
    (minimal_doc([{"step": "jump_iut", "sub_sa": 0, "value": (1 << 64) + 1}]), schema.BadStep),
    (minimal_doc([{"step": "hold_past_window", "sub_sa": 0, "extra": 1 << 20}]),
     schema.BadStep),
    (minimal_doc(session="x" * 201), schema.BadCase),
    (minimal_doc(session="a\nb"), schema.BadCase),
    (minimal_doc(session="caf\u00e9"), schema.BadCase),
    (minimal_doc(session=5), schema.BadCase),
    (minimal_doc(ran_profile={"window": 1 << 30}), schema.BadCase),
    (minimal_doc(ran_profile={"colour": "red"}), schema.BadCase),
    (minimal_doc(ran_profile={"framing": "psp", "seq": "32"}), schema.BadCase),
    (minimal_doc(ran_profile={"window": "64"}), schema.BadCase),
    (minimal_doc(ran_profile={"aead": "rot13"}), schema.BadCase),
    (minimal_doc(findings=[{"requirement": "X", "verdict": "FAIL", "message": 3}]),
     schema.BadCase),
    ({**minimal_doc(), "record": {"python": "3"}}, schema.BadDocument),
    ({**minimal_doc(), "iut": "a\x1b[2Jb"}, schema.BadDocument),
    ({**minimal_doc(), "complete": "yes"}, schema.BadDocument),
])
def test_parse_refuses(doc, error):
    with pytest.raises(error) as e:
        parse(doc)
    assert "\n" not in str(e.value) and len(str(e.value)) < 600


def test_parse_accepts_every_verb_with_bounds():
    steps = [{"step": "peer_send", "sub_sa": 0, "size": 65535, "v6": True},
             {"step": "iut_send", "sub_sa": 65535, "size": 0},
             {"step": "duplicate", "index": -1},
             {"step": "deliver_changed", "index": 1 << 32, "how": "forge-seq",
              "value": 1 << 64},
             {"step": "deliver", "index": -(1 << 32)},
             {"step": "drop", "index": 0},
             {"step": "deliver_bytes", "wire": "Ab" * 65535, "label": "hand-built"},
             {"step": "hold_past_window", "sub_sa": 0, "extra": -65535},
             {"step": "jump_iut", "sub_sa": 0, "value": 1 << 64},
             {"step": "jump_peer", "sub_sa": 0, "delta": 0},
             {"step": "rekey"}]
    assert {s["step"] for s in steps} == set(VERBS)
    doc = parse(minimal_doc(steps, session="replay/lockstep/esp#3"))
    got = schema.validate_steps(doc["cases"][0]["steps"])
    schema.check_steps_fit(got, named("esp"))
    assert got[0] == ("peer_send", {"sub_sa": 0, "size": 65535, "v6": True})


def test_steps_must_fit_the_profile():
    big = named("esp").replace(window=1 << 20)
    held = (("hold_past_window", {"sub_sa": 0, "extra": 0}),)
    schema.check_steps_fit(held * 3, big)
    with pytest.raises(schema.BadStep, match="seal more than"):
        schema.check_steps_fit(held * 5, big)
    with pytest.raises(schema.BadStep, match="no packet in flight"):
        schema.check_steps_fit((("peer_send", {"sub_sa": 0, "size": 8}),
                                ("deliver", {"index": 0}), ("drop", {"index": 0})), big)
    with pytest.raises(schema.BadStep, match="names no sub-SA"):
        schema.check_steps_fit((("jump_peer", {"sub_sa": 1, "delta": 3}),), named("esp"))
    schema.check_steps_fit((("jump_peer", {"sub_sa": 3, "delta": 3}),), named("eesp-v0"))


def test_entry_point_check_imports_nothing():
    assert entry_point_iut("reference") and entry_point_iut("scapy")
    assert entry_point_iut("mutant:window-too-wide") and entry_point_iut("mutant:nonexistent")
    for spec in ("os:abort", "harness.adapters.reference:ReferenceIut",
                 "espspec_no_such_module_xyz:f", "", "mutant", "reference:x"):
        assert not entry_point_iut(spec), spec
    assert "espspec_no_such_module_xyz" not in sys.modules


# --- writing ---------------------------------------------------------------------------------

def _results() -> list[CaseResult]:
    fail = CaseResult("replay/lockstep", "replay", "esp", ("REPLAY-DUPLICATE-DROP",),
                      Verdict.FAIL, message="dup",
                      findings=[Finding("REPLAY-DUPLICATE-DROP", "dup", Verdict.FAIL)],
                      steps=[("peer_send", {"sub_sa": 0, "size": 8, "v6": False}),
                             ("duplicate", {"index": 0}), ("deliver", {"index": 0}),
                             ("deliver", {"index": 0})], seconds=0.25)
    fail.session = "replay/lockstep/esp#2"     # a field of CaseResult once the engine has it
    passed = CaseResult("nonce/lockstep", "nonce", "esp", ("NONCE-UNIQUE",), Verdict.PASS)
    return [fail, passed]


def _record(**over) -> RunRecord:
    kw = dict(iut="reference", iut_name="reference", iut_version="1.2",
              capabilities=Capabilities(framings=frozenset({"psp", "esp"})),
              started=datetime.now(timezone.utc).timestamp() - 2.0, seed=7, strict=True,
              depth="certify", timeout=10.0, isolation="process",
              argv=["espspec", "run", "--iut", "reference"])
    kw.update(over)
    return RunRecord.now(**kw)


def _write(folder: Path, **over) -> dict:
    kw = dict(iut="reference", seed=7, strict=True, depth="certify", profiles=["esp"],
              record=_record())
    kw.update(over)
    path = write_json(folder, _results(), **kw)
    assert path == folder / "results.json"
    return json.loads(path.read_text())


def test_record_has_every_field_with_sane_values(tmp_path):
    doc = _write(tmp_path)
    rec = doc["record"]
    assert set(rec) == set(schema.RECORD_FIELDS) == {f.name for f in fields(RunRecord)}
    assert rec["espspec_version"] == metadata.version("espspec")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    if commit:      # this test runs from the checkout
        assert re.fullmatch(r"[0-9a-f]{40}", rec["espspec_commit"])
        assert isinstance(rec["espspec_modified"], bool)
    assert rec["python"] == platform.python_version()
    assert rec["python_implementation"] == platform.python_implementation()
    assert set(rec["libraries"]) == set(LIBRARIES)
    assert rec["libraries"]["cryptography"] == metadata.version("cryptography")
    assert rec["platform"] == platform.platform()
    assert (rec["iut"], rec["iut_name"], rec["iut_version"]) == ("reference", "reference", "1.2")
    caps = rec["capabilities"]
    assert caps["framings"] == ["esp", "psp"] and caps["max_sub_sas"] == 1
    assert set(caps) == {f.name for f in fields(Capabilities)}
    assert rec["argv"] == ["espspec", "run", "--iut", "reference"]
    started = datetime.strptime(rec["started"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - started).total_seconds()) < 120
    assert 1.5 <= rec["duration"] < 120
    assert (rec["seed"], rec["strict"], rec["depth"], rec["profiles"]) == (
        7, True, "certify", ["esp"])
    assert (rec["timeout"], rec["isolation"]) == (10.0, "process")
    assert doc["complete"] is True and "incomplete_reason" not in doc
    assert doc["schema"] == "espspec-results/2" and doc["summary"] == {"FAIL": 1, "PASS": 1}
    schema.validate_document(doc)


def test_record_defaults_and_unknown_iut():
    rec = RunRecord.now(iut="x:y", iut_name=None, iut_version=3, capabilities=None,
                        started=datetime.now(timezone.utc), seed=0, strict=False, depth="ci",
                        isolation="in-process")
    out = rec.to_json()
    assert out["iut_version"] is None and out["capabilities"] is None
    assert out["argv"] == list(sys.argv) and out["timeout"] is None
    assert out["profiles"] is None and 0 <= out["duration"] < 60


def test_incomplete_run_says_why(tmp_path):
    doc = _write(tmp_path, complete=False, incomplete_reason="interrupted by SIGINT")
    assert doc["complete"] is False and doc["incomplete_reason"] == "interrupted by SIGINT"
    schema.validate_document(doc)
    with pytest.raises(ValueError):
        _write(tmp_path, incomplete_reason="no reason for a complete run")
    with pytest.raises(ValueError, match="differ"):
        _write(tmp_path, record=_record(seed=8))


def test_old_keywords_still_write_a_valid_document(tmp_path):
    path = write_json(tmp_path, _results(), iut="reference", seed=0, strict=False,
                      depth="ci", profiles=["esp"])
    doc = schema.read_document(path)
    assert doc["record"] is None and doc["complete"] is True


def test_session_label_round_trips(tmp_path):
    doc = _write(tmp_path)
    entry = doc["cases"][0]
    assert entry["session"] == "replay/lockstep/esp#2"
    assert "session" not in doc["cases"][1]
    loaded = load_steps(tmp_path / "results.json", "replay/lockstep", "esp")
    assert loaded.session == "replay/lockstep/esp#2" and loaded.seed == 7 and loaded.strict
    assert loaded.steps[1] == ("duplicate", {"index": 0})
    assert loaded.profile == named("esp")
    with pytest.raises(UnknownCase):
        load_steps(tmp_path / "results.json", "replay/lockstep", "esp-esn")


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    for _ in range(3):
        _write(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    # a write that fails at the rename removes its temporary file and keeps the old one
    blocked = tmp_path / "blocked"
    (blocked / "results.json").mkdir(parents=True)
    (blocked / "results.json" / "keep").write_text("x")
    with pytest.raises(OSError):
        _write(blocked)
    assert [p.name for p in blocked.iterdir()] == ["results.json"]
    assert (blocked / "results.json" / "keep").read_text() == "x"
    assert not [p for p in tmp_path.rglob("*.tmp")]
