"""The partner SDK: sessions, predictions and receipt verification over HTTP."""
