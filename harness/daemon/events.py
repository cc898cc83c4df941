"""The reporting lines a daemon prints on stdout, and the control lines it answers.

Theory of operation: a line is a word in capitals followed by ``key=value`` fields
(docs/daemon.md, "Reporting lines"); ``parse(line)`` turns it into an ``Event`` -- the
word, the fields, the line -- and never raises: a line it does not know is an ``Event``
whose kind is ``OTHER``, so a daemon's own chatter on stdout is harmless. ``KINDS`` is
the table of words a harness acts on and what each means. Control answers (``OK ...`` and
``ERROR ...``, with ``--control``) are events too; their fields are the words after the
kind. Pure: no pipes, no threads (``watch.py`` reads the pipe).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Event", "KINDS", "parse"]

KINDS = {
    "READY": "set up, or rekeyed: generation=N",
    "DELIVER": "a packet was accepted and written to the TUN device",
    "DROP": "a packet was dropped: reason=R requirement=ID",
    "IGNORE": "not an (E)ESP/PSP packet, or one the daemon will not carry",
    "REFUSE": "the sender refused to protect a packet: sub_sa=K requirement=ID",
    "REKEY-FAILED": "a SIGHUP found a file that cannot be a rekey",
    "SEND-FAILED": "the outer socket refused a datagram",
    "TUN-WRITE-FAILED": "the TUN device refused a delivered payload",
    "LOST": "n event lines were lost on a full pipe",
    "OK": "a control line was carried out",
    "ERROR": "a control line was refused",
}


@dataclass(frozen=True)
class Event:
    kind: str                       # a KINDS key, or "OTHER"
    fields: dict = field(default_factory=dict)
    words: tuple[str, ...] = ()     # the words after the kind that are not key=value
    line: str = ""

    def get(self, key: str) -> str | None:
        """A field's value; ``-`` (cannot tell) is None."""
        value = self.fields.get(key)
        return None if value in (None, "-") else value

    def number(self, key: str) -> int | None:
        value = self.get(key)
        try:
            return None if value is None else int(value, 0)
        except ValueError:
            return None


def parse(line: str) -> Event:
    words = line.strip().split()
    if not words or words[0] not in KINDS:
        return Event("OTHER", line=line.rstrip("\n"))
    fields, plain = {}, []
    for w in words[1:]:
        key, eq, value = w.partition("=")
        if eq and key:
            fields[key] = value
        else:
            plain.append(w)
    return Event(words[0], fields, tuple(plain), line.rstrip("\n"))
