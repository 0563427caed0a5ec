"""Code that runs inside the sandbox: the trusted harness and the untrusted policy's runner.

Only the standard library, ocatari/ALE and RestrictedPython may be imported from here, so that
the sandbox image stays lean (no pydantic, no SQLAlchemy).
"""
