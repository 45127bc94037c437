"""A pytest plugin for the s3-tests run: writes each selected test's markers
to the JSON file named by COFFRE_S3T_MARKERS (and whether `-k` or `-m` left
tests out), so that the report groups the results without collecting the
suite a second time."""

import json
import os


def pytest_collection_finish(session):
    path = os.environ.get("COFFRE_S3T_MARKERS")
    if not path:
        return
    markers = {item.name: sorted({m.name for m in item.iter_markers()}) for item in session.items}
    partial = bool(session.config.option.keyword or session.config.option.markexpr)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"partial": partial, "tests": markers}, f)
