"""MicroPython-side modules of the virtual board (run inside the unix port, not CPython)."""
