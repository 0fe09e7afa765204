"""Executors: who runs a job's window plan. ``local`` (this process, `local.py`) or ``ray`` (a Ray
cluster, `ray.py`). Both share the window pieces (`windows.py`) and the blending/publishing
(`assembly.py`), so a job gives the same files whichever executor runs it.
"""
