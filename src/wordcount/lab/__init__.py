"""The lab: the tooling that tests, measures and breaks wordcount, not part of what a worker,
a client or an operator runs.

- ``soak``: the soak harness (many seeded jobs under faults, each result checked);
- ``bench``: the benchmarks (``wordcount bench ...``);
- ``corpus``: the deterministic corpus generator (``wordcount corpus``);
- ``raft``: local RedisRaft clusters (tests, soak, benchmarks);
- ``clusterjob``: the compose cluster's own commands (job, verdict, timeline);
- ``faults``: the worker's fault injection (``--crash-at``, ``--stall-*``, ``--slowdown``);
- ``clirun``: the CLI as a child process (the soak harness, the tests).

(The chaos monkey lives beside its Dockerfile, in the top-level ``chaos`` package.)

The import rule: the product (``wordcount`` outside this package) never imports the lab; the
lab may import anything. The exceptions, lazy imports inside named functions only:
``wordcount.cli``'s functions that register or run the lab's commands, and
``workeropts.WorkerOptions.faults``, which builds ``faults.Faults`` when a fault option is given.
tests/test_imports.py enforces it.
"""
