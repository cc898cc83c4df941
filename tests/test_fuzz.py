"""Fuzz targets: the shipped corpora and saved crashes replay, the structure-aware mutator
gets past the ICV and kills the receiver-side mutants, and the targets run under atheris
as a user runs them (instrumented, -fork, a crash found, reproduced and minimized).

Corpus replays import each target script by path and call its ``test_one_input``; atheris
itself runs only in child processes (``atheris.Fuzz`` ends its process with status 0, so it
must never run inside pytest).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness.fuzz import differential, oracle, registry, reseal, seeds
from harness.fuzz.engine import CORPORA, libfuzzer_args
from harness.fuzz.oracle import Disagreement, Pair
from harness.fuzz.sas import split
from harness.fuzz.stats import load
from harness.loader import load_iut
from spec_model import Receiver

ESPSPEC = [sys.executable, "-m", "harness.cli"]
CRASHES = CORPORA / "crashes"
ALL = sorted(registry.targets())
IN_PROCESS = [t for t in ALL if t != "network"]
needs_atheris = pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                                   reason="atheris is installed by .ci/run ('.[fuzz]')")


def test_targets_are_executable_scripts():
    expected = {"capture", "decode-eesp-full", "decode-eesp-optimized", "decode-esp",
                "decode-psp", "diff-scapy-esp", "diff-scapy-psp", "network", "receiver",
                "resealed"}
    assert set(ALL) == expected
    for t in registry.targets().values():
        assert t.path.read_text().startswith("#!/usr/bin/env python3\n"), t.path
        assert os.access(t.path, os.X_OK), f"{t.path} lost its executable bit"
        assert t.summary
    assert registry.target("network").needs.startswith("root")


def test_shipped_seeds_are_what_make_corpus_writes():
    """The seeds are deterministic: --make-corpus on any machine writes these files."""
    for name, items in seeds.corpora().items():
        folder = CORPORA / name
        on_disk = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert on_disk == dict(items), f"corpora/{name}/ is stale: espspec fuzz --make-corpus"
    assert set(seeds.corpora()) | {"network"} == set(ALL)


def test_capture_seeds_cover_every_link_type_in_both_formats():
    from harness.capture import SUPPORTED_LINKTYPES, CaptureReader, ReaderConfig
    assert set(seeds.LINKTYPES) == set(SUPPORTED_LINKTYPES)
    files = {p.name: p.read_bytes() for p in (CORPORA / "capture").iterdir()}
    for lt in seeds.LINKTYPES.values():
        assert {f"{lt}.pcap", f"{lt}.pcapng"} <= set(files)
    for name, data in files.items():
        reader = CaptureReader(data, ReaderConfig(strict=True))
        assert list(reader) and not reader.findings, name


@pytest.mark.parametrize("name", IN_PROCESS)
def test_every_corpus_file_replays(name):
    module = load(name)
    files = sorted((CORPORA / name).iterdir())
    assert files, f"corpora/{name}/ is empty"
    for path in files:
        module.test_one_input(path.read_bytes())


def _crashes() -> list[dict]:
    return json.loads((CRASHES / "index.json").read_text())


@pytest.mark.parametrize("crash", [c for c in _crashes() if c["target"] != "network"],
                         ids=lambda c: c["file"])
def test_every_saved_crash_replays_as_recorded(crash, monkeypatch):
    """A third-party input is classified as the reviewed finding it was written up as; an
    input found against a mutant (``iut``; with the exact oracle) tells that mutant from
    the model and replays silently against the reference."""
    data = (CRASHES / crash["file"]).read_bytes()
    command = f"espspec fuzz {crash['target']} corpora/crashes/{crash['file']}"
    if crash.get("iut"):
        assert crash["strict"] and crash["reproduce"] == (
            f"ESPSPEC_FUZZ_STRICT=1 ESPSPEC_FUZZ_IUT={crash['iut']} {command}")
        monkeypatch.setattr(oracle, "STRICT", True)
        profile, packet = split(data)
        Pair(profile, load_iut("reference")()).judge(packet)
        with pytest.raises(Disagreement):
            Pair(profile, load_iut(crash["iut"])()).judge(packet)
        return
    assert crash["reproduce"] == command
    module = load(crash["target"])
    differential.SEEN.clear()
    module.test_one_input(data)
    key = tuple(crash["known"])
    assert differential.SEEN[key] == 1, dict(differential.SEEN)
    assert (Path(__file__).parent.parent / differential.KNOWN[key].report).exists()


def test_every_known_finding_has_a_saved_input_and_a_write_up():
    saved = {tuple(c["known"]) for c in _crashes() if c.get("known")}
    assert all(c.get("known") or c.get("iut") for c in _crashes())
    assert saved == set(differential.KNOWN)
    for key, known in differential.KNOWN.items():
        text = (Path(__file__).parent.parent / known.report).read_text()
        assert known.summary in text, key


# --- the structure-aware mutator --------------------------------------------------------
_FLIPS = random.Random(11)


def _flip(data: bytes, max_size: int) -> bytes:
    """A stand-in for atheris.Mutate, deterministic (one seeded generator for the whole
    test session): one byte set to a random value, a cut, or a few bytes more."""
    rng = _FLIPS
    if not data:
        return bytes([rng.randrange(256)])
    b = bytearray(data)
    op = rng.randrange(4)
    if op < 2:
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 2:
        del b[rng.randrange(len(b)):]
    else:
        b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return bytes(b[:max_size])


def _resealed_inputs(n: int = 3000, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    _FLIPS.seed(seed)
    seeds_ = [p.read_bytes() for p in sorted((CORPORA / "resealed").iterdir())]
    out = []
    for _ in range(n):
        out.append(reseal.mutate(rng.choice(seeds_), 512, rng.randrange(1 << 30), _flip))
    return out


def test_resealed_mutations_get_past_the_icv_to_the_checks_behind_it():
    reasons = Counter()
    for data in _resealed_inputs():
        if not data:
            continue
        profile, packet = split(data)
        out = Receiver(profile, *_sa(profile)).open(packet)
        reasons[getattr(out, "requirement", None) or "delivered"] += 1
    n = sum(reasons.values())
    assert reasons["ICV-VERIFY"] < n * 0.3, reasons
    for behind in ("delivered", "PAD-CONTENT-CHECK", "WIRE-PAD-LENGTH", "WIRE-DUMMY-DISCARD",
                   "REPLAY-SEQ-ZERO", "CRYPTOFF-WITHIN-PAYLOAD"):
        assert reasons[behind], (behind, reasons)


def _sa(profile):
    from harness.fuzz.sas import SPI, keymat
    return keymat(profile), SPI


def test_open_packet_and_seal_are_inverse_on_every_seed():
    for path in sorted((CORPORA / "resealed").iterdir()):
        profile, packet = split(path.read_bytes())
        fields = reseal.open_packet(profile, packet)
        if "vector" in path.name and fields is None:
            continue          # a vector body the profile's alignment refuses still decodes
        assert fields is not None, path.name
        assert reseal.seal(profile, fields) == packet, path.name


# mutants whose bug sits in the receiver: the oracle must tell each from the model
RECEIVER_MUTANTS = ["duplicate-top-accepted", "seq-zero-accepted", "padding-unchecked",
                    "short-icv-accepted", "window-too-narrow", "subsa-id-unchecked",
                    "kdf-ignores-session-id", "cryptoff-not-in-aad", "shared-window",
                    "window-before-icv"]


@pytest.mark.parametrize("mutant", RECEIVER_MUTANTS)
def test_resealed_oracle_kills_receiver_side_mutants(mutant, monkeypatch):
    monkeypatch.setattr(oracle, "STRICT", True)       # the exact oracle: every rule
    factory = load_iut(f"mutant:{mutant}")
    caps = factory().capabilities()
    for data in filter(None, _resealed_inputs(1500)):
        profile, packet = split(data)
        if caps.unsupported(profile):
            continue
        try:
            Pair(profile, factory()).judge(packet)
        except Disagreement:
            return
    pytest.fail(f"1500 resealed inputs did not tell mutant:{mutant} from the model")


def test_default_oracle_follows_the_levels(monkeypatch):
    """Without STRICT, a disagreement on a SHOULD rule (padding-unchecked breaks
    PAD-CONTENT-CHECK, a SHOULD) is counted as NON-STRICT, never raised; one on a MUST
    rule (duplicate-top-accepted: REPLAY-DUPLICATE-DROP) is raised."""
    monkeypatch.setattr(oracle, "STRICT", False)
    oracle.NON_STRICT.clear()
    inputs = list(filter(None, _resealed_inputs(1500)))
    for data in inputs:
        profile, packet = split(data)
        Pair(profile, load_iut("mutant:padding-unchecked")()).judge(packet)
    assert oracle.NON_STRICT["PAD-CONTENT-CHECK"] > 0, oracle.NON_STRICT
    with pytest.raises(Disagreement, match="MUST"):
        for data in inputs:
            profile, packet = split(data)
            Pair(profile, load_iut("mutant:duplicate-top-accepted")()).judge(packet)


def test_reference_agrees_with_the_model_on_resealed_inputs():
    factory = load_iut("reference")
    for data in filter(None, _resealed_inputs(1000)):
        profile, packet = split(data)
        Pair(profile, factory()).judge(packet)


def test_decoder_target_catches_a_non_canonical_decoder(monkeypatch):
    from harness.fuzz.parsers import NotCanonical, decoder_target
    from spec_model import Framing
    from spec_model.wire.esp import EspCodec
    target = decoder_target(Framing.ESP)
    packet = (CORPORA / "decode-esp" / "esp-s0-20").read_bytes()
    target(packet)
    monkeypatch.setattr(EspCodec, "encode", lambda self, pkt: b"")
    with pytest.raises(NotCanonical):
        decoder_target(Framing.ESP)(packet)


def test_differential_raises_on_an_unreviewed_class(monkeypatch):
    monkeypatch.setattr(differential, "KNOWN", {})
    target = load("diff-scapy-esp").test_one_input
    crash = next(c for c in _crashes() if c["target"] == "diff-scapy-esp")
    with pytest.raises(differential.Finding):
        target((CRASHES / crash["file"]).read_bytes())


def test_libfuzzer_args_add_seeds_work_folder_and_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("ESPSPEC_FUZZ_WORK", str(tmp_path / "work"))
    monkeypatch.delenv("ESPSPEC_FUZZ_ARGS_DONE", raising=False)
    args = libfuzzer_args("capture", ["x", "-runs=5"])
    assert args[:2] == ["x", "-runs=5"]
    assert args[2].startswith("-artifact_prefix=") and args[2].endswith("/")
    assert args[3:] == [str(tmp_path / "work" / "capture" / "corpus"), str(CORPORA / "capture")]
    new = tmp_path / "does-not-exist"
    args = libfuzzer_args("capture", ["x", str(new)])
    assert new.is_dir() and args[-2:] == [str(new), str(CORPORA / "capture")]
    crash = tmp_path / "crash-1"
    crash.write_bytes(b"x")
    assert libfuzzer_args("capture", ["x", str(crash)])[-1] == str(crash)
    monkeypatch.setenv("ESPSPEC_FUZZ_ARGS_DONE", "1")
    assert libfuzzer_args("capture", ["x", "-runs=5"]) == ["x", "-runs=5"]


# --- under atheris, as a user runs them -------------------------------------------------
def _fuzz(*args: str, env: dict | None = None, timeout: float = 300):
    return subprocess.run([*ESPSPEC, "fuzz", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_fuzz_list_and_bad_target():
    out = _fuzz("--list")
    assert out.returncode == 0 and all(t in out.stdout for t in ALL)
    bad = _fuzz("no-such-target")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


@needs_atheris
@pytest.mark.parametrize("name", IN_PROCESS)
def test_target_runs_instrumented(name, tmp_path):
    run = _fuzz(name, "-runs=2000", "-max_len=512", str(tmp_path / "corpus"),
                env={"ESPSPEC_FUZZ_WORK": str(tmp_path / "work")})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 2000 runs" in run.stderr
    assert "Is the code instrumented" not in run.stderr
    inited = int(re.search(r"INITED cov: (\d+)", run.stderr).group(1))
    assert inited >= 3, run.stderr[-2000:]


@needs_atheris
def test_coverage_grows_and_corpus_is_written(tmp_path):
    corpus = tmp_path / "corpus"
    run = _fuzz("capture", "-runs=20000", str(corpus),
                env={"ESPSPEC_FUZZ_WORK": str(tmp_path / "work")})
    assert run.returncode == 0, run.stderr[-2000:]
    inited = int(re.search(r"INITED cov: (\d+)", run.stderr).group(1))
    done = int(re.search(r"DONE\s+cov: (\d+)", run.stderr).group(1))
    assert done > inited
    assert len(list(corpus.iterdir())) > 0


@needs_atheris
def test_fork_mode_reexecutes_the_script(tmp_path):
    run = _fuzz("decode-esp", "-fork=2", "-max_total_time=6", str(tmp_path / "c"),
                env={"ESPSPEC_FUZZ_WORK": str(tmp_path / "work")}, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "-fork=2" in run.stderr and "job:" in run.stderr


@needs_atheris
def test_a_mutant_is_found_reproduced_and_minimized(tmp_path):
    """resealed against mutant:padding-unchecked: libFuzzer saves the input, the one-line
    command reproduces it, -minimize_crash shrinks it and the result still reproduces."""
    env = {"ESPSPEC_FUZZ_WORK": str(tmp_path / "work"), "ESPSPEC_FUZZ_STRICT": "1",
           "ESPSPEC_FUZZ_IUT": "mutant:padding-unchecked"}
    art = tmp_path / "art"
    art.mkdir()
    found = _fuzz("resealed", "-max_total_time=120", "-seed=1", f"-artifact_prefix={art}/",
                  str(tmp_path / "c"), env=env)
    crashes = list(art.glob("crash-*"))
    assert found.returncode != 0 and crashes, found.stderr[-2000:]
    assert "Disagreement" in found.stdout, found.stdout[-1500:]    # atheris prints it there
    again = _fuzz("resealed", str(crashes[0]), env=env)
    assert again.returncode != 0 and "Disagreement" in again.stdout
    small = _fuzz("resealed", "-minimize_crash=1", "-runs=2000", "-seed=1",
                  f"-artifact_prefix={art}/",
                  str(crashes[0]), env=env)
    assert small.returncode == 0, small.stderr[-2000:]
    minimized = list(art.glob("minimized-from-*"))
    assert minimized
    assert len(minimized[-1].read_bytes()) <= len(crashes[0].read_bytes())
    assert _fuzz("resealed", str(minimized[-1]), env=env).returncode != 0


def test_clusterfuzzlite_build_script(tmp_path):
    """.clusterfuzzlite/build.sh with the builder image's two commands (pip3 and
    compile_python_fuzzer) replaced by recorders: every target but network is handed to
    compile_python_fuzzer with espspec's metadata, and each gets its seeds as a zip."""
    import zipfile
    root = Path(__file__).parent.parent
    project = root / ".clusterfuzzlite"
    assert "language: python" in (project / "project.yaml").read_text()
    assert (project / "Dockerfile").read_text().count("base-builder-python") == 1
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "log"
    for tool in ("pip3", "compile_python_fuzzer"):
        (bin_ / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n')
        (bin_ / tool).chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run(["bash", str(project / "build.sh")], cwd=root, capture_output=True,
                         text=True, env={**os.environ, "OUT": str(out),
                                         "PATH": f"{bin_}:{os.environ['PATH']}"})
    assert run.returncode == 0, run.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "pip3 install ."
    built = sorted(Path(line.split()[1]).stem for line in lines[1:])
    assert built == sorted(n.replace("-", "_") for n in IN_PROCESS)
    assert all("--copy-metadata espspec" in line for line in lines[1:])
    for name in IN_PROCESS:
        with zipfile.ZipFile(out / f"{name.replace('-', '_')}_seed_corpus.zip") as z:
            assert sorted(z.namelist()) == sorted(p.name for p in (CORPORA / name).iterdir())


# --- the network target (root: namespaces, a daemon behind a TUN device) ----------------
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root; "
                                "CI runs as root")


def _dead_leftovers() -> set[str]:
    """Namespaces and folders of espspec runs that are gone (what a cleanup missed)."""
    from harness.net import leftovers
    return {left.name for left in leftovers.find() if not left.owner_alive}


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


@needs_root
@needs_atheris
def test_network_target_agrees_with_the_reference_daemon_and_cleans_up(tmp_path):
    before = _dead_leftovers()
    run = _fuzz("network", "-runs=40", "-seed=1", str(tmp_path / "c"),
                env={"ESPSPEC_FUZZ_WORK": str(tmp_path / "work")}, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(r"Done \d+ runs", run.stderr), run.stderr[-2000:]
    assert _dead_leftovers() <= before


@needs_root
@needs_atheris
def test_network_target_kills_a_mutant_daemon_and_cleans_up(tmp_path):
    """The saved input that told mutant-daemon:padding-unchecked from the model over the
    wire still does, through the one-line command; against the reference daemon it
    passes; neither run leaves anything behind."""
    crash = next(c for c in _crashes() if c["target"] == "network")
    path = str(CRASHES / crash["file"])
    before = _dead_leftovers()
    bad = _fuzz("network", path, timeout=300, env={"ESPSPEC_FUZZ_WORK": str(tmp_path / "w"),
                                                   "ESPSPEC_FUZZ_STRICT": "1",
                                                   "ESPSPEC_FUZZ_IUT": crash["iut"]})
    assert bad.returncode != 0, bad.stderr[-2000:]
    assert "Disagreement" in bad.stdout and "PAD-CONTENT-CHECK" in bad.stdout
    good = _fuzz("network", path, timeout=300, env={"ESPSPEC_FUZZ_WORK": str(tmp_path / "w")})
    assert good.returncode == 0, good.stdout[-2000:]
    assert _dead_leftovers() <= before


@needs_root
@needs_atheris
def test_network_target_killed_leaves_nothing(tmp_path):
    """SIGKILL the fuzzing child while it has a daemon up: the supervisor removes its
    namespaces and processes by PID."""
    import signal
    import time
    from harness.net import leftovers
    proc = subprocess.Popen([*ESPSPEC, "fuzz", "network", "-runs=100000", str(tmp_path / "c")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "ESPSPEC_FUZZ_WORK": str(tmp_path / "work")})
    try:
        deadline = time.monotonic() + 120
        child = None
        while time.monotonic() < deadline and child is None:
            # the supervisor is proc itself (espspec fuzz execs the script); its one child
            # fuzzes; wait until that child has a daemon running in its namespaces
            for pid in _children(proc.pid):
                if any(left.pids for left in leftovers.find(f"{leftovers.PREFIX}{pid}-")):
                    child = pid
            time.sleep(0.5)
        assert child, "no daemon came up within 120 s"
        os.kill(child, signal.SIGKILL)
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert f"left by the fuzzer, PID {child}" in err
    assert not [left for left in leftovers.find(f"{leftovers.PREFIX}{child}-")]


@needs_root
@needs_atheris
def test_network_target_on_strongswan(tmp_path):
    """strongSwan negotiates its keys: inputs are re-sealed under them; charon agrees with
    the model on 200 inputs and the run leaves nothing behind."""
    from harness.strongswan.rig import CHARON
    if not os.access(CHARON, os.X_OK):
        pytest.skip(f"strongSwan's charon ({CHARON}) is not installed (Debian: "
                    f"strongswan-charon libcharon-extra-plugins); CI installs it")
    before = _dead_leftovers()
    run = _fuzz("network", "-runs=200", "-seed=1", str(tmp_path / "c"), timeout=600,
                env={"ESPSPEC_FUZZ_WORK": str(tmp_path / "work"), "ESPSPEC_FUZZ_IUT": "strongswan"})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert re.search(r"Done \d+ runs", run.stderr)
    assert _dead_leftovers() <= before
