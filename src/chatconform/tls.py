"""One verifying TLS context per process, shared by every client chatconform makes.

Building a context loads the CA bundle: 25-300 ms of blocking CPU each time (more on a busy
machine). A suite makes a client per test and a load run one per user, so a context per client
would cost seconds per run; the verification is the same (httpx's defaults: certifi, or
SSL_CERT_FILE / SSL_CERT_DIR from the environment)."""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def verifying_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
