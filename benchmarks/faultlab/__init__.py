"""The fault lab: real daemons under a seeded workload, real faults injected at recorded
times, and each daemon's own log labelled line by line by the injector.

No published log dataset is labelled at the moment of the fault by what caused it; here the
injector knows when it acted, what the daemon should say about it (the fault's expected trace)
and why (a one-line root cause and fix), so a line is abnormal when it falls inside a fault's
window and matches that fault's trace. Runs are seeded and write the daemon's log as it wrote
it, the labels beside it and a manifest (``runner.run_lab``); ``rlog lab`` is the command.

Daemons are Debian packages started on loopback in a private folder (``daemon.Daemon``).
"""
