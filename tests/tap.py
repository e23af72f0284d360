"""The tally of the Python tests that are not kvcache's: one "ok - " or
"not ok - " line per check, then "N passed, N failed" and the exit status."""

passed = failed = 0


def ok(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok - {what}")
    else:
        failed += 1
        print(f"not ok - {what}")
    return cond


def summary():
    """Print the tally; the exit status to return (1 if anything failed)."""
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
