"""chatconform's Locust users for the Flowyte Chat API, measured exactly (see chatconform.load).

With chatconform: ``chatconform load --profile smoke`` (starts the embedded reference when no
target is given). With Locust directly, the target comes from ``--host`` and the FLOWYTE_*
environment (FLOWYTE_API_KEY, FLOWYTE_AGENT_ID) or FLOWYTE_TARGET_FILE::

    FLOWYTE_TARGET_FILE=creds.json locust -f loadtests/locustfile.py --headless \\
        -u 10 -r 10 -t 30s --cc-endpoint completions --cc-report-dir reports/mine
    locust --config loadtests/profiles/smoke.conf --host http://127.0.0.1:8080/api/v1

``--cc-*`` options (``locust --help``) choose the endpoint, open-loop rate and thresholds;
``requests.jsonl`` and ``load-summary.json`` land in ``--cc-report-dir``; add ``--processes N``
for N worker processes whose raw samples the master merges.
"""

from chatconform.load.users import CompletionUser, OpenLoopUser, SessionUser

__all__ = ["CompletionUser", "OpenLoopUser", "SessionUser"]
