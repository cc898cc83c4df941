"""Offline certification from packet captures: ``espspec check-pcap`` and ``gen-pcap``.

Theory of operation: a capture of what a sender put on the wire is read once with
espspec's own reader (``harness.capture``: mmap + struct, no per-packet objects) and every
ESP, EESP and PSP packet is judged against the executable model (``spec_model``): wire
format, ICV and padding, sequence numbers (strictly increasing per sub-SA, never
wrapping), nonce uniqueness per key across sub-SAs, and the limits of the profile. A
second capture of what a receiver delivered is judged by replaying the first through the
model's receiver. Every finding names a requirement of the catalogue and the packet
number and file offset it was found at; problems of the capture files are findings too.

=============  ==============================================================
module         concept
=============  ==============================================================
keys           key files: Wireshark esp_sa tables and espspec JSON -> ``SaKey``
config         ``CheckConfig``, ``DEFAULT_DISSECT``, ``EESP_UDP_PORT``
checker        ``check_capture``: the driver (plan, passes, merge, report)
jobs           work units that must stay together, the plan per worker, merging
senderpass     one pass over the sender capture: packets to their ``SaCheck``
dispatch       framing kinds, SPI position, SPI tables, address matching
sacheck        ``SaCheck``: per-SA/sub-SA state; wire format, ICV, body, accounting
fastpath       the ESP hot-path closure (the tests compare it with the full path)
sequence       sequence numbers: strictly increasing per sub-SA, never wrapping
nonces         nonce spaces and nonce uniqueness per key across sub-SAs and SAs
limits         hard and soft limits per sub-SA and summed; the 2^64 cap of a key
diagnosis      what explains an ICV failure or a misplaced sub-SA ID
rxjudge        the receiver's delivered packets against the model receiver
report         ``Finding``, bounded ``FindingSink``, statistics, ``CheckReport``
pcapwriter     fast classic-pcap writing and outer headers
generate       ``gen-pcap``: captures of any profile, seeded faults, IUT as source;
               the packet cap and the free-space check before writing
cli            the ``check-pcap`` and ``gen-pcap`` subcommands
=============  ==============================================================
"""

from .checker import check_capture
from .config import DEFAULT_DISSECT, EESP_UDP_PORT, CheckConfig
from .generate import (FAULTS, MAX_PACKETS, GenConfig, GenError, GenResult, NoSpaceError,
                       PacketCountError, generate_capture, output_sizes)
from .keys import KeyEntryError, KeysError, KeysFileError, SaKey, load_keys
from .report import CheckReport, Finding, FindingSink, ReceiverSummary, SaStats, SubSaStats

__all__ = ["CheckConfig", "CheckReport", "DEFAULT_DISSECT", "EESP_UDP_PORT", "FAULTS",
           "Finding", "FindingSink", "GenConfig", "GenError", "GenResult", "KeyEntryError",
           "KeysError", "KeysFileError", "MAX_PACKETS", "NoSpaceError", "PacketCountError",
           "ReceiverSummary", "SaKey", "SaStats", "SubSaStats", "check_capture",
           "generate_capture", "load_keys", "output_sizes"]
