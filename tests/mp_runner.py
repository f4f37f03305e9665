# Runs test functions of one firmware test module inside MicroPython and reports each result
# on its own line for the pytest collector (tests/conftest.py).
import gc
import sys

module_name = sys.argv[1]
names = sys.argv[2:]
mod = __import__(module_name)
for name in names:
    fn = getattr(mod, name, None)
    if fn is None:
        print("\n@@RESULT %s MISSING" % name)
        continue
    print("\n@@START %s" % name)
    gc.collect()
    try:
        fn()
    except Exception as e:
        print("\n@@TRACEBACK %s" % name)
        sys.print_exception(e)
        print("\n@@RESULT %s FAIL" % name)
    else:
        print("\n@@RESULT %s PASS" % name)

# module-level clean-up, as pytest's teardown_module: after the tests, never counted as one
teardown = getattr(mod, "teardown_module", None)
if teardown is not None:
    try:
        teardown()
    except Exception as e:
        print("\n@@TEARDOWN failed")
        sys.print_exception(e)
