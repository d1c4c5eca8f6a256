"""The backend-agnostic contract suite: every test here runs on every store in ``STORE_FACTORIES``."""
