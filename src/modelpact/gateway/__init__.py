"""The partner gateway: the HTTP interface partners call (FastAPI on uvicorn)."""
