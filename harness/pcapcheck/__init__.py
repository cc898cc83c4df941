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
checker        ``check_capture``: per-SA/sub-SA checks, one pass, ``--jobs``
rxjudge        the receiver's delivered packets against the model receiver
report         ``Finding``, bounded ``FindingSink``, statistics, ``CheckReport``
pcapwriter     fast classic-pcap writing and outer headers
generate       ``gen-pcap``: captures of any profile, seeded faults, IUT as source
cli            the ``check-pcap`` and ``gen-pcap`` subcommands
=============  ==============================================================
"""

from .checker import DEFAULT_DISSECT, EESP_UDP_PORT, CheckConfig, check_capture
from .generate import FAULTS, GenConfig, GenError, GenResult, generate_capture
from .keys import KeyEntryError, KeysError, KeysFileError, SaKey, load_keys
from .report import CheckReport, Finding, FindingSink, ReceiverSummary, SaStats, SubSaStats

__all__ = ["CheckConfig", "CheckReport", "DEFAULT_DISSECT", "EESP_UDP_PORT", "FAULTS",
           "Finding", "FindingSink", "GenConfig", "GenError", "GenResult", "KeyEntryError",
           "KeysError", "KeysFileError", "ReceiverSummary", "SaKey", "SaStats", "SubSaStats",
           "check_capture", "generate_capture", "load_keys"]
