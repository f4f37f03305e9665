# Duty cycle per sub-band, dwell time, join back-off.
from fwtest import eq, raises
from spot.clock import MASK, ticks_add
from spot.lorawan import region
from spot.lorawan.dutycycle import HOUR_MS, DutyCycle, DutyCycleError, JoinBackoff


def test_eu868_one_percent_band_closes_for_99_times_the_airtime():
    d = DutyCycle(region.get("EU868"))
    t = MASK - 5000  # across the tick wrap
    eq(d.wait_ms(868100000, 61696, t), 0)
    d.record(868100000, 61696, t)
    eq(d.wait_ms(868300000, 61696, t), 62 * 99, "same 1% band")
    eq(d.wait_ms(869525000, 61696, t), 0, "the 10% band is free")
    eq(d.wait_ms(868100000, 61696, ticks_add(t, 62 * 99)), 0)
    d.record(869525000, 1000000, t)
    eq(d.wait_ms(869525000, 1000, t), 1000 * 9)
    d.record(868900000, 10000, t)
    eq(d.wait_ms(868900000, 1000, t), 10 * 999, "0.1% band")


def test_dwell_time_refused_with_reason():
    d = DutyCycle(region.get("US915"))
    e = raises(DutyCycleError, d.wait_ms, 903900000, 401000, 0)
    eq("dwell" in str(e), True)
    eq(d.wait_ms(903900000, 399000, 0), 0)
    eq(DutyCycle(region.get("EU868")).wait_ms(868100000, 2000000, 0), 0)  # no dwell limit in EU868


def test_join_backoff_budgets():
    j = JoinBackoff()
    t = 0
    for _ in range(24):  # 24 x 1.5 s = 36 s: the first hour's budget
        eq(j.wait_ms(1500000, t), 0)
        j.record(1500000, t)
        t += 10000
    w = j.wait_ms(1500000, t)
    eq(w, HOUR_MS - t, "wait for the second window")
    t += w
    eq(j.wait_ms(1500000, t), 0)
    j.record(30000000, t)  # 30 s in the 10-hour window
    eq(j.wait_ms(10000000, t + 1000) > 0, True)
