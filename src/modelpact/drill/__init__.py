"""Drills: exercises that run the whole system end to end, as an adversary would.

- :mod:`modelpact.drill.redteam` — model-extraction attacks through a real gateway with
  a partner's credentials, against the monitor the charter sets (``modelpact redteam``).
"""
