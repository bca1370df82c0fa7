"""The checkout's root conftest: registers the suites' pytest plugin (chatconform.plugin).

So `pytest suites/ --base-url URL --api-key K --agent-id A` runs the conformance suites from the root
of a checkout with the same options as `chatconform run` (see the README's mapping), and `pytest`
runs the self-tests under tests/. The plugin is inert for tests that name no contract rule: it starts
(or resolves) a target only when a collected test carries a `@pytest.mark.rule` marker.
`chatconform run` does not read this file: it passes `-p chatconform.plugin -c suites/run.ini`.
"""

pytest_plugins = ["chatconform.plugin"]
