"""espspec's outer layer: adapters to implementations, the lockstep driver, the CLI.

Everything that does I/O (files, processes, sockets, clocks) lives here, never in
``spec_model``.
"""
