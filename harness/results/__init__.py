"""What a run leaves behind: the results document on disk and its text on the terminal.

* ``document`` -- ``results.json``: written atomically, read back for ``espspec replay``.
* ``schema`` -- what a results file may contain, checked before anything in it is used.
* ``record`` -- the certification record: espspec, Python, libraries, platform, the IUT,
  the command line, the times and settings of the run.
* ``text`` -- the summary table and the folded step listings.

docs/results.md describes every field of the document.
"""
