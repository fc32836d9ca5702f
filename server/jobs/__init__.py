"""Jobs: the record (``model``), where records live (``store``: a protocol; ``sqlite_store``,
``redis_store``), the one way a job's status changes (``lifecycle``, which sends ``webhooks``),
a job's files (``folder``), live progress (``progress``), retention (``housekeeping``), the
data folder's disk (``disk``) and the service's metrics (``metrics``).

Nothing here knows HTTP or where a job runs (``server.runners``)."""
