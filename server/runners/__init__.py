"""Where jobs run: the :class:`~server.runners.runner.JobRunner` protocol (the API's view),
its two implementations (``device_pool``: this process's devices; ``celery_dispatcher``:
Celery workers on other hosts, which run ``celery_worker``), the code that runs one started
job on one device (``run_job``), and ``factory.make_backend``, the one place that picks them."""
