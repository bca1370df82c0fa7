"""chatconform: conformance and load-testing harness for the Flowyte Chat API."""

__version__ = "0.1.0"
