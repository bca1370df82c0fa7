"""Checks: plain functions over recorded exchanges that return findings naming contract rules.

No network in here: every check can be unit-tested on a recorded or hand-built observation.
"""
