"""What a run leaves behind: the results document on disk and its text on the terminal.

* ``document`` -- ``results.json``: written atomically, read back for ``espspec replay``.
* ``text`` -- the summary table and the folded step listings.
"""
