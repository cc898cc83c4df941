"""Throughput of the capture reader and frame dissector.

Theory of operation
-------------------
Writes a classic pcap of N Ethernet/IPv4/ESP frames (64-byte ESP packet:
SPI, sequence number and 56 bytes of body; 98-byte frames) with ``struct``
into a temporary folder, then times several passes over it and prints
packets per second (by wall clock and by process CPU time, which is less
disturbed by other processes on a shared machine) and the process's peak
resident set size.  It asserts nothing; the numbers are for reading, not for
gating.

Passes:
  read          CaptureReader.tuples()                 (records only)
  read+dissect  iter_dissected()                       (the API a checker uses)
  hot loop      tuples() + make_dissector() inlined    (the cheapest full path)
  named         iterating Record named tuples          (convenience cost)

Run:  python benchmarks/bench_capture.py [--packets N] [--keep PATH]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.capture import (  # noqa: E402
    CaptureReader,
    DissectConfig,
    iter_dissected,
    make_dissector,
)

ESP_LEN = 64


def write_capture(path: str, packets: int) -> int:
    """Write the benchmark pcap; return its size in bytes."""
    ip_len = 20 + ESP_LEN
    frame_len = 14 + ip_len
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, 50, 0,
                     bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    body = bytes(range(ESP_LEN - 8))
    rec = struct.Struct("<IIII")
    esp_head = struct.Struct("!II")
    prefix = eth + ip
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        chunk = []
        for i in range(packets):
            chunk.append(rec.pack(1_700_000_000 + i // 100_000, (i * 10) % 1_000_000,
                                  frame_len, frame_len))
            chunk.append(prefix)
            chunk.append(esp_head.pack(0x01000001, i + 1))
            chunk.append(body)
            if len(chunk) >= 65536:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))
    return os.path.getsize(path)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(label: str, fn, packets: int) -> None:
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    count, extra = fn()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    note = "" if count == packets else f"  (counted {count}, expected {packets})"
    print(f"  {label:<13} wall {dt:6.3f} s {count / dt / 1e6:6.3f} M/s   "
          f"cpu {cpu:6.3f} s {count / cpu / 1e6:6.3f} M/s   "
          f"peak RSS {peak_rss_mib():6.1f} MiB  {extra}{note}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per pass")
    ap.add_argument("--keep", help="write the capture here and keep it")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        path = args.keep or os.path.join(tmp, "esp.pcap")
        t0 = time.perf_counter()
        size = write_capture(path, args.packets)
        print(f"wrote {args.packets} packets, {size / 1e6:.1f} MB in "
              f"{time.perf_counter() - t0:.2f} s  (peak RSS so far {peak_rss_mib():.1f} MiB)")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
              + " ".join(f"{x:.2f}" for x in os.getloadavg())
              + "  (wall figures suffer when other processes share the CPUs)")
        config = DissectConfig()

        def read_only():
            reader = CaptureReader(path)
            n = 0
            for _rec in reader.tuples():
                n += 1
            return n, f"findings {len(reader.findings)}"

        def read_dissect():
            reader = CaptureReader(path)
            n = esp = 0
            for _rec, d in iter_dissected(reader, config):
                n += 1
                if d[0] == "esp":
                    esp += 1
            return n, f"esp {esp}, findings {len(reader.findings)}"

        def hot_loop():
            reader = CaptureReader(path)
            fn = make_dissector(1, config)
            n = esp = 0
            payload_bytes = 0
            for rec in reader.tuples():
                d = fn(rec[7])
                n += 1
                if d[0] == "esp":
                    esp += 1
                    payload_bytes += d[6]
            return n, f"esp {esp}, payload bytes {payload_bytes}"

        def named():
            reader = CaptureReader(path)
            n = 0
            for rec in reader:
                n += rec.captured_len > 0
            return n, ""

        for label, fn in (("read", read_only), ("read+dissect", read_dissect),
                          ("hot loop", hot_loop), ("named", named)):
            for _ in range(args.repeat):
                timed(label, fn, args.packets)


if __name__ == "__main__":
    main()
