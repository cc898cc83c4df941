"""espspec's executable specification of ESP, its sub-SA design space, EESP v0 and PSP.

Theory of operation: this package is sans-IO. It holds protocol state (counters, replay
windows) and turns bytes into bytes; it opens no sockets, reads no files and reads no
clock. Each module owns one concept of the specifications:

=================  ===============================================================
module             concept
=================  ===============================================================
profile            the design-space axes, validation of combinations, named profiles
requirements       the requirement catalogue (stable IDs, sources, levels, severity)
errors             one exception class per way input can be wrong
aead               the AEAD algorithms and their cipher objects
kdf, keying        per-sub-SA key derivation, and which key/salt each sub-SA uses
nonce              explicit IVs and 12-byte nonces per nonce scheme
subsa              where the sub-SA ID lives on the wire
wire/              header codecs per framing, AAD, and the encrypted body layouts
limits             counter space, hard limits, the 2^64 cap and rekey thresholds
replay             the anti-replay window (RFC 6479 bitmap) and ESN inference
sa                 what both ends of a child SA share (keys, codec, limits)
sender, receiver   the two ends of a child SA with N sub-SAs
ledger             (key, nonce) bookkeeping that reports reuse
=================  ===============================================================
"""

from .errors import (ConfigError, DecodeError, EspSpecError, ImpossibleProfile,
                     InsecureProfile, ProfileError, SendRefused, UnknownProfile)
from .ledger import NonceLedger, NonceReuse
from .profile import (NAMED, Framing, Kdf, Mode, NonceScheme, Profile, SeqWire,
                      SubSaLocation, named)
from .receiver import Delivered, DropReason, Dropped, Receiver
from .requirements import CATALOGUE, Level, Requirement, Severity
from .sender import Sealed, Sender

__all__ = [
    "CATALOGUE", "ConfigError", "DecodeError", "Delivered", "DropReason", "Dropped",
    "EspSpecError", "Framing", "ImpossibleProfile", "InsecureProfile", "Kdf", "Level",
    "Mode", "NAMED", "NonceLedger", "NonceReuse", "NonceScheme", "Profile", "ProfileError",
    "Receiver", "Requirement", "Sealed", "SendRefused", "Sender", "SeqWire", "Severity",
    "SubSaLocation", "UnknownProfile", "named",
]
