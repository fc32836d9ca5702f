"""The HTTP API: routes per resource (``jobs``, ``health``, ``page``) that reach the back-end
only through ``deps`` (the ``JobStore`` and ``JobRunner`` protocols, the job views, the
intake of new jobs), the wiring behind them (``service``), and the contract (``schemas``,
``errors``, ``openapi``) with its request plumbing (``uploads``, ``body_timeout``)."""
