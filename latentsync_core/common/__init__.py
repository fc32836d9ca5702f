"""What every part of the library shares: coded errors (``errors.py``), the command lines'
exit statuses (``cli_exit.py``) and background threads (``background.py``)."""
