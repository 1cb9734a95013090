"""Tests of modelpact.store: the contract on every backend, SQLite specifics, artifacts."""
