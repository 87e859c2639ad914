"""The error a model raises for an invalid request; Triton returns its message to the client verbatim."""


class BadRequest(ValueError):
    """The request is invalid; the message names the input, the value and the fix."""
