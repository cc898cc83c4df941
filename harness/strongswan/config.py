"""The configuration of one charon, as text and as the vici message that loads it.

Theory of operation: three frozen dataclasses describe everything the rig chooses.
``DaemonConfig`` is one charon's process-wide settings (where its vici socket and log
file are, which plugins it loads and in what order); ``ConnConfig`` is its single IKEv2
connection (PSK, addresses, identities, ESP-in-UDP forced, no DPD, no rekeying or
reauthentication); ``ChildConfig`` is one CHILD_SA (name, ESP proposal, mode, traffic
selectors, replay window, no rekeying, a hard lifetime the caller picks). Pure
functions turn them into text or dicts:

* ``strongswan_conf(daemon)`` -- the file ``STRONGSWAN_CONF`` points at;
* ``swanctl_conf(conn, children)`` -- the equivalent swanctl.conf, written next to it so
  a person can reproduce a run with ``swanctl --load-all``; the rig itself loads
  ``conn_message(conn, children)`` and ``shared_message(conn)`` over vici, which say the
  same as that file.

Every setting sits on its own line. The plugin list is explicit (``load_modular = no``)
and puts kernel-libipsec before kernel-netlink: that order selects the userspace ESP data
path over the kernel's, which this machine lacks. Nothing here touches a file or a
process; ``rig.py`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

#: plugins each charon loads, in this order (kernel-libipsec ahead of kernel-netlink)
PLUGINS = ("random", "nonce", "openssl", "aes", "sha1", "sha2", "hmac", "gcm", "chapoly",
           "ccm", "ctr", "cmac", "xcbc", "curve25519", "gmp", "kdf", "kernel-libipsec",
           "kernel-netlink", "socket-default", "vici", "counters")

#: strongSwan's spelling of "never" for rekey/reauth/life times
NEVER = 0


@dataclass(frozen=True)
class DaemonConfig:
    """Process-wide settings of one charon."""
    vici_socket: str                    # a path; the daemon listens on unix://<path>
    log_file: str                       # the file logger's output
    plugins: tuple[str, ...] = PLUGINS
    chd_level: int = 4                  # 4: CHILD_SA keys are hexdumped
    esp_level: int = 1                  # 1: replay/ICV/padding drops; 2: unknown SPIs too
    ike_level: int = 1
    lib_level: int = 1                  # 1: the TUN device's name is logged
    default_level: int = 0
    threads: int = 16                   # 9 busy at idle (libipsec, receivers): 8 starve vici


@dataclass(frozen=True)
class ChildConfig:
    """One CHILD_SA of the connection."""
    name: str
    esp_proposal: str = "aes128gcm16"
    local_ts: str = "203.0.113.1/32"
    remote_ts: str = "203.0.113.2/32"
    mode: str = "tunnel"
    replay_window: int | None = None    # None: strongSwan's default
    life_time: int = NEVER              # seconds; see rig.py for why it is not NEVER


@dataclass(frozen=True)
class ConnConfig:
    """The one IKEv2 connection of one charon (PSK, UDP-encapsulated ESP, no timers)."""
    name: str
    local_addr: str
    remote_addr: str
    local_id: str
    remote_id: str
    psk: bytes
    ike_proposal: str = "aes128gcm16-prfsha256-x25519"
    encap: bool = True                  # fake NAT detection: libipsec only does ESP in UDP


def _b(flag: bool) -> str:
    return "yes" if flag else "no"


def _block(name: str, lines: list[str], indent: int) -> list[str]:
    pad = "    " * indent
    return [f"{pad}{name} {{", *lines, f"{pad}}}"]


def strongswan_conf(d: DaemonConfig) -> str:
    """The strongswan.conf text for one charon."""
    filelog = _block("rig", [
        f"            path = {d.log_file}",
        f"            default = {d.default_level}",
        f"            chd = {d.chd_level}",
        f"            esp = {d.esp_level}",
        f"            ike = {d.ike_level}",
        f"            lib = {d.lib_level}",
        "            flush_line = yes",
        "            append = no",
        "            ike_name = yes",
    ], 2)
    body = [
        "    load_modular = no",
        f"    load = {' '.join(d.plugins)}",
        f"    threads = {d.threads}",
        "    install_routes = no",
        "    install_virtual_ip = no",
        "    retransmit_tries = 3",
        "    retransmit_timeout = 0.5",
        "    retransmit_base = 1.4",
        *_block("filelog", filelog, 1),
        *_block("plugins", [
            *_block("vici", [f"            socket = unix://{d.vici_socket}"], 2),
        ], 1),
    ]
    return "\n".join([*_block("charon", body, 0),
                      *_block("swanctl", [f"    socket = unix://{d.vici_socket}"], 0)]) + "\n"


def _child_items(c: ChildConfig) -> list[tuple[str, str]]:
    items = [("mode", c.mode), ("esp_proposals", c.esp_proposal),
             ("local_ts", c.local_ts), ("remote_ts", c.remote_ts),
             ("start_action", "none"), ("close_action", "none"), ("dpd_action", "none"),
             ("rekey_time", str(NEVER)), ("life_time", str(c.life_time)),
             ("rand_time", str(NEVER)), ("rekey_bytes", str(NEVER)),
             ("rekey_packets", str(NEVER))]
    if c.replay_window is not None:
        items.append(("replay_window", str(c.replay_window)))
    return items


def _conn_items(c: ConnConfig) -> list[tuple[str, str]]:
    return [("version", "2"), ("local_addrs", c.local_addr), ("remote_addrs", c.remote_addr),
            ("proposals", c.ike_proposal), ("encap", _b(c.encap)), ("mobike", "no"),
            ("dpd_delay", str(NEVER)), ("rekey_time", str(NEVER)),
            ("reauth_time", str(NEVER)), ("over_time", str(NEVER)),
            ("rand_time", str(NEVER)), ("unique", "never"), ("keyingtries", "1")]


def swanctl_conf(conn: ConnConfig, children: tuple[ChildConfig, ...]) -> str:
    """The swanctl.conf equivalent of ``conn_message`` and ``shared_message``."""
    kids: list[str] = []
    for ch in children:
        kids += _block(ch.name, [f"                {k} = {v}" for k, v in _child_items(ch)], 3)
    body = [f"        {k} = {v}" for k, v in _conn_items(conn)]
    body += _block("local", ["            auth = psk", f"            id = {conn.local_id}"], 2)
    body += _block("remote", ["            auth = psk",
                              f"            id = {conn.remote_id}"], 2)
    body += _block("children", kids, 2)
    secret = _block("ike-peer", [f"        id-local = {conn.local_id}",
                                 f"        id-remote = {conn.remote_id}",
                                 f"        secret = 0x{conn.psk.hex()}"], 1)
    return "\n".join([*_block("connections", _block(conn.name, body, 1), 0),
                      *_block("secrets", secret, 0)]) + "\n"


#: options vici takes as lists (swanctl splits them at commas)
_LISTS = frozenset({"local_addrs", "remote_addrs", "proposals", "esp_proposals", "local_ts",
                    "remote_ts"})


def _vici(items: list[tuple[str, str]]) -> dict:
    return {k: v.split(",") if k in _LISTS else v for k, v in items}


def conn_message(conn: ConnConfig, children: tuple[ChildConfig, ...]) -> dict:
    """The vici ``load-conn`` message for ``conn`` with exactly ``children``."""
    return {conn.name: {
        **_vici(_conn_items(conn)),
        "local": {"auth": "psk", "id": conn.local_id},
        "remote": {"auth": "psk", "id": conn.remote_id},
        "children": {ch.name: _vici(_child_items(ch)) for ch in children},
    }}


def shared_message(conn: ConnConfig) -> dict:
    """The vici ``load-shared`` message for the connection's PSK."""
    return {"id": f"{conn.name}-psk", "type": "IKE", "data": conn.psk,
            "owners": [conn.local_id, conn.remote_id]}
