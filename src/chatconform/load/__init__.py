"""Load testing with Locust as the engine, measured exactly.

Modules, one job each: ``timeline`` (a request's timestamps and how stream events advance it),
``stream`` (send a request, read its stream as bytes arrive), ``metrics`` (vLLM-named figures on
HDR histograms), ``openloop`` (arrival schedules), ``thresholds``, ``summary``
(load-summary.json), ``health`` (client CPU and event-loop lag), ``collect`` (merging workers'
raw samples), ``plugin`` and ``users`` (Locust wiring, imported by ``loadtests/locustfile.py``),
``profiles``, ``runner`` (Locust as a child process) and ``cli`` (``chatconform load``).
Only ``plugin`` and ``users`` import Locust (and so gevent's monkey-patching).
"""
