"""The embedded reference server: a strict, self-contained implementation of the Flowyte Chat API.

It shares no code with the checking side of chatconform (client, SSE parser, checks): it
imports only the standard library, Starlette and uvicorn.
Run it with ``python -m chatconform.reference``.
"""
