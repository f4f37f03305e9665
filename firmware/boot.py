# Runs on every boot, before main.py. Kept empty on purpose: all start-up lives in spot.app,
# where failures are recorded in the crash log.
