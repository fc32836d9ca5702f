"""What every part of the library shares: coded errors (``errors.py``), the command lines'
exit statuses (``cli_exit.py``), background threads (``background.py``) and the devices a
process runs on (``devices.py``)."""
