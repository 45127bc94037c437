"""The verdict of a ceph/s3-tests run against Coffre, read from its junit xml.

Prints passed/failed/error/skipped in total and per group (the suite's
pytest markers, recorded at collection by `markers.py`), then compares the
failures with `expected-failures.txt`: exits 1 when a test outside the list
failed or errored, and names the listed tests that now pass (without failing).

Usage: report.py JUNIT_XML MARKERS_JSON EXPECTED_FAILURES [NOT_EXCUSED]

NOT_EXCUSED: listed tests whose reason starts with it are expected to pass in
this run (the SSE-C tests, listed for plain HTTP, in the run over TLS).

With UNEXPECTED_OUT set, the names of the tests that failed outside the list
are written there, one a line, for the caller to try once more alone.
"""

import collections
import json
import os
import sys
import xml.etree.ElementTree as ET

# The groups reported, in this order: the suite's markers for S3 features.
GROUPS = (
    "auth_aws4 auth_common bucket_policy bucket_encryption bucket_logging checksum conditional_write copy "
    "encryption lifecycle list_objects_v2 object_lock object_ownership sse_s3 tagging versioning delete_marker "
    "fails_on_aws"
).split()


def outcomes(junit_path):
    """Test name -> passed, failed, error or skipped (an error in teardown wins)."""
    out = {}
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        if "error" in kinds:
            verdict = "error"
        elif "failure" in kinds:
            verdict = "failed"
        elif "skipped" in kinds:
            verdict = "skipped"
        else:
            verdict = "passed"
        name = case.get("name")
        if out.get(name) != "error":
            out[name] = verdict
    return out


def expected(path):
    """Test name -> reason, from lines `test_name  # reason`."""
    listed = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, reason = line.partition("#")
            if not sep or not reason.strip():
                sys.exit(f"{path}:{number}: no reason given (`test_name  # reason`)")
            listed[name.strip()] = reason.strip()
    return listed


def counts(verdicts):
    c = collections.Counter(verdicts)
    return "  ".join(f"{k} {c.get(k, 0):4d}" for k in ("passed", "failed", "error", "skipped"))


def main(junit_path, markers_path, expected_path, not_excused=None):
    results = outcomes(junit_path)
    with open(markers_path, encoding="utf-8") as f:
        collected = json.load(f)
    markers = collected["tests"]
    print(f"{'all':20s} {len(results):4d}  {counts(results.values())}")
    for group in GROUPS + ["(no group)"]:
        if group == "(no group)":
            names = [n for n in results if not set(markers.get(n, [])) & set(GROUPS)]
        else:
            names = [n for n in results if group in markers.get(n, [])]
        print(f"{group:20s} {len(names):4d}  {counts(results[n] for n in names)}")

    listed = expected(expected_path)
    if not_excused:
        listed = {n: r for n, r in listed.items() if not r.startswith(not_excused)}
    bad = sorted(n for n, v in results.items() if v in ("failed", "error") and n not in listed)
    now_pass = sorted(n for n, v in results.items() if v == "passed" and n in listed)
    # A run of part of the suite (-k) says nothing of the tests it left out.
    unknown = [] if collected["partial"] else sorted(n for n in listed if n not in results)
    if now_pass:
        print(f"\n{len(now_pass)} tests listed as expected failures now pass (remove them from the list):")
        print("\n".join(f"  {n}" for n in now_pass))
    if unknown:
        print(f"\n{len(unknown)} listed tests were not run (renamed, or the suite's pin changed):")
        print("\n".join(f"  {n}" for n in unknown))
    if bad:
        print(f"\n{len(bad)} tests failed that are not expected to:")
        print("\n".join(f"  {n}: {results[n]}" for n in bad))
        if os.environ.get("UNEXPECTED_OUT"):
            with open(os.environ["UNEXPECTED_OUT"], "w", encoding="utf-8") as f:
                f.write("".join(f"{n}\n" for n in bad))
        return 1
    print("\nno failure outside the expected list")
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
