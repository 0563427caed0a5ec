"""Check and play untrusted policy programs.

This package stands alone: it imports neither `engine` nor `storage`.
"""
