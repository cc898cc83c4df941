"""Throughput of ``espspec check-pcap`` against tshark decrypting the same capture.

Theory of operation
-------------------
Generates a capture with ``espspec gen-pcap``'s generator (profile ``esp``, 64-byte inner
packets, two child SAs so that ``--jobs 2`` has two units of work to split; Ethernet,
IPv4, protocol 50) into a temporary folder, then times in separate child processes, so
that each peak resident set size is its own:

  check jobs=1   check_capture: read, dissect, decrypt + ICV, trailer, sequence numbers,
                 nonce rule/uniqueness, limits, statistics (every check of the API)
  check jobs=2   the same split over two worker processes (both cores)
  tshark         tshark -r F -q with esp.enable_encryption_decode and
                 esp.enable_authentication_check on, the gen-pcap esp_sa table in a
                 temporary WIRESHARK_CONFIG_DIR, and an io,stat tap counting frames whose
                 ICV is good (which forces full dissection and shows that every frame was
                 decrypted)

It prints packets per second (wall clock and CPU time), the peak RSS of each run and the
ratio espspec / tshark. It asserts nothing: the figures are for reading, and wall-clock
figures suffer when other processes share the CPUs (the load average is printed).

Run:  python3 benchmarks/bench_pcapcheck.py [--packets N] [--keep DIR] [--no-tshark]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def child_check(capture: str, keys: str, jobs: int) -> None:
    from harness.pcapcheck import check_capture
    t0, c0 = time.perf_counter(), time.process_time()
    rep = check_capture(capture, keys, jobs=jobs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "packets": rep.ipsec, "wall": wall, "cpu": cpu + kids.ru_utime + kids.ru_stime,
        "self_cpu": cpu, "rss_self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_workers_mib": kids.ru_maxrss / 1024, "findings": rep.verdicts,
        "jobs": rep.jobs}))


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *args],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_tshark(tshark: str, capture: str, esp_sa: str, tmp: str) -> dict:
    conf = os.path.join(tmp, "wireshark")
    os.makedirs(conf, exist_ok=True)
    shutil.copy(esp_sa, os.path.join(conf, "esp_sa"))
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=conf, HOME=tmp)
    cmd = [tshark, "-r", capture, "-q", "-o", "esp.enable_encryption_decode:TRUE",
           "-o", "esp.enable_authentication_check:TRUE",
           "-z", "io,stat,0,COUNT(esp.icv_good)esp.icv_good==1"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            text=True)
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    counts = re.findall(r"\|\s+(\d+)\s+\|", out)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
            "rss_mib": usage.ru_maxrss / 1024, "icv_good": int(counts[-1]) if counts else -1,
            "exit": proc.returncode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--keep", help="write the capture into this folder and keep it")
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("CAPTURE", "KEYS", "JOBS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_check(args.child[0], args.child[1], int(args.child[2]))
        return
    from harness.pcapcheck import GenConfig, generate_capture
    from spec_model import named
    tmp = args.keep or tempfile.mkdtemp(prefix="bench-pcapcheck-")
    os.makedirs(tmp, exist_ok=True)
    capture = os.path.join(tmp, "bench.pcap")
    t0 = time.perf_counter()
    res = generate_capture(GenConfig(named("esp"), args.packets, capture, sas=2, payload_size=64))
    gen_s = time.perf_counter() - t0
    size = os.path.getsize(capture)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"gen-pcap: {res.records} packets (esp, 2 SAs, 64-byte inner packets), "
          f"{size / 1e6:.1f} MB in {gen_s:.2f} s ({res.records / gen_s / 1e3:.0f} k packets/s)")
    results = {}
    for jobs in (1, 2):
        r = run_child(["--child", capture, res.keys, str(jobs)])
        results[jobs] = r
        print(f"check-pcap jobs={jobs}: wall {r['wall']:.2f} s = "
              f"{r['packets'] / r['wall'] / 1e3:.0f} k packets/s; CPU {r['cpu']:.2f} s = "
              f"{r['packets'] / r['cpu'] / 1e3:.0f} k packets/s per core; peak RSS "
              f"{r['rss_self_mib']:.0f} MiB (workers {r['rss_workers_mib']:.0f} MiB); "
              f"findings {r['findings'] or 'none'}; processes used {r['jobs']}")
    tshark = None if args.no_tshark else shutil.which("tshark")
    if tshark is None:
        print("tshark: not run (" + ("--no-tshark" if args.no_tshark else
                                     "binary not installed: apt-get install -y tshark") + ")")
    else:
        version = subprocess.run([tshark, "--version"], capture_output=True,
                                 text=True).stdout.splitlines()[0]
        t = run_tshark(tshark, capture, res.esp_sa, tmp)
        print(f"tshark ({version}): wall {t['wall']:.2f} s = "
              f"{res.records / t['wall'] / 1e3:.0f} k packets/s; CPU {t['cpu']:.2f} s; peak "
              f"RSS {t['rss_mib']:.0f} MiB; frames with a good ICV {t['icv_good']}; "
              f"exit {t['exit']}")
        for jobs, r in results.items():
            print(f"ratio espspec jobs={jobs} / tshark (packets/s, wall clock): "
                  f"{t['wall'] / r['wall']:.1f}x")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
