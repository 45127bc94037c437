#!/usr/bin/env python3
"""Fail when a forbidden dependency between Coffre's crates appears.

Reads `cargo metadata --format-version 1 --no-deps` (no build, no network)
and checks every workspace crate's declared dependencies against the rules
below, which are the crate table of docs/architecture.md written as data.
Each violation is printed as

    crate A may not depend on crate B: <reason>

and the exit status is 1 if there is any. `--self-test` runs the checker on
synthetic graphs (one with each kind of forbidden edge) and fails if one of
them is not caught, so the check cannot pass silently.

Only normal (and build) dependencies count for layering; dev-dependencies
may reach across layers for tests, but may not pull in the binary except in
the test crates.

Python 3 standard library only.
"""

import json
import os
import subprocess
import sys

# --- The layers ---------------------------------------------------------
# Every workspace crate must be named here (a crate of no layer is itself a
# violation, so a new crate is placed deliberately). Crates that do not exist
# yet may be listed: the rules hold for them as soon as they appear.

BINARY = {"coffre"}
# Test tooling: links anything, is linked by nothing.
TESTS = {"coffre-e2e", "coffre-crashdisk"}
# The edges: HTTP fronts that reach data through the object service.
FRONTS = {"coffre-s3", "coffre-admin", "coffre-console"}
CORE = {"coffre-core"}
# Engines: implement the core's (or the binary's) traits, plugged in by the binary.
ENGINES = {"coffre-meta", "coffre-blob", "coffre-node", "coffre-kms", "coffre-audit"}
# The disk layer: fsync, atomic replacement, the failed-flush record, the redb
# group-commit writer. `coffre-durability` becomes `coffre-disk`.
DISK = {"coffre-disk", "coffre-durability"}
# Pure computation, no I/O.
PURE = {"coffre-crypto", "coffre-topology", "coffre-label", "coffre-iam"}

ALL = BINARY | TESTS | FRONTS | CORE | ENGINES | DISK | PURE

# --- Rules between workspace crates (normal and build dependencies) -----
# (crates the rule binds, crates they may not depend on, why)
RULES = [
    (PURE, ALL - PURE,
     "a pure crate does no I/O and depends only on other pure crates"),
    (CORE, ALL - PURE,
     "coffre-core depends only on pure crates: engines implement its traits "
     "and the binary plugs them in, so the object service never imports an engine"),
    (ENGINES, ENGINES,
     "no engine imports another engine: what two engines share is a trait or a "
     "type in coffre-core (or a pure crate)"),
    (ENGINES, FRONTS | BINARY | TESTS,
     "engines sit below the fronts and the binary"),
    (DISK, ALL,
     "the disk layer is the bottom: it knows nothing of what is stored"),
    (FRONTS, (ENGINES - {"coffre-audit"}) | DISK,
     "the fronts reach data only through the object service and the engines' "
     "traits in coffre-core (coffre-audit is allowed: the edges produce the "
     "audit events, through its AuditTrail trait and Event type)"),
    (ALL - BINARY - TESTS, FRONTS,
     "only the binary wires the fronts (and only test crates drive them); "
     "shared HTTP plumbing belongs to the binary or to core-level traits"),
    ({"coffre-meta"}, {"coffre-crypto", "coffre-kms"},
     "the metadata engines know nothing of cryptography: wrapped keys are bytes to them"),
    ({"coffre-kms"}, CORE,
     "the custodians know nothing of buckets: they implement coffre_crypto::Kms"),
    (ALL - TESTS, TESTS,
     "test tooling is linked by nothing but other test tooling"),
    (ALL, BINARY,
     "the binary is the top of the graph: nothing links it"),
]

# --- Rules on dev-dependencies ------------------------------------------
DEV_RULES = [
    (ALL - TESTS, BINARY,
     "a dev-dependency may not pull in the binary except in the test crates "
     "(unit tests of a crate test that crate)"),
]

# --- Rules on external crates (normal and build dependencies) -----------
# The "knows nothing of" column of the crate table, where a crate name says it.
IO = {
    "tokio", "tokio-rustls", "rustls", "hyper", "hyper-util", "hyper-rustls",
    "axum", "reqwest", "cryptoki", "redb", "tokio-postgres", "deadpool-postgres",
    "tokio-postgres-rustls", "fuser",
}
HTTP = {
    "hyper", "hyper-util", "hyper-rustls", "http", "http-body", "http-body-util",
    "axum", "tower", "reqwest", "s3s",
}
SQL = {"tokio-postgres", "deadpool-postgres", "tokio-postgres-rustls", "postgres", "sqlx"}
STORAGE = SQL | {"redb"}

EXTERNAL_RULES = [
    (PURE, IO, "a pure crate does no I/O (no runtime, network, file database or device driver)"),
    (CORE, HTTP | STORAGE,
     "coffre-core knows nothing of HTTP or of how an engine stores its rows"),
    ({"coffre-meta"}, HTTP, "the metadata engines know nothing of HTTP"),
    (FRONTS, STORAGE, "the fronts know nothing of storage layout or SQL"),
    ({"coffre-admin", "coffre-console"} | BINARY, {"s3s"},
     "only the S3 front speaks S3's XML"),
    (BINARY, STORAGE,
     "the binary wires engines; their SQL and redb files stay inside them"),
]

# --- Known exceptions, to delete as the #14 moves land ------------------
# (crate, dependency) -> why it is tolerated today. The check passes over
# these and warns when one is no longer needed, so it can be deleted.
ALLOWED_FOR_NOW = {
    # Engine -> engine. The PostgreSQL engine stores the shared audit log by
    # implementing coffre_audit::LogStore (and reads Event, SignedHead and
    # the Merkle leaf hash from coffre-audit). Goes when that trait and its
    # types live in coffre-core (or a pure audit-format crate), or when the
    # events are written by an outbox in the metadata transaction.
    ("coffre-meta", "coffre-audit"):
        "PostgreSQL engine implements coffre_audit::LogStore (shared audit log)",
}

LAYER_KINDS = (None, "normal", "build")  # cargo metadata: kind null = normal


def check(metadata):
    """Return (violations, stale exceptions) for one `cargo metadata` document."""
    members = set(metadata.get("workspace_members", []))
    packages = [p for p in metadata["packages"] if not members or p["id"] in members]
    names = {p["name"] for p in packages}
    violations = []
    used_exceptions = set()

    def report(a, b, reason):
        if (a, b) in ALLOWED_FOR_NOW:
            used_exceptions.add((a, b))
        else:
            violations.append(f"crate {a} may not depend on crate {b}: {reason}")

    for name in sorted(names - ALL):
        violations.append(
            f"crate {name} is in no layer of scripts/check-deps.py: "
            "place it in the layer table (and docs/architecture.md) first")

    graph = {n: set() for n in names}
    for p in sorted(packages, key=lambda p: p["name"]):
        a = p["name"]
        seen = set()
        for d in p["dependencies"]:
            b, kind = d["name"], d.get("kind")
            if (b, kind) in seen or b == a:
                continue
            seen.add((b, kind))
            internal = b in names or b in ALL
            if kind in LAYER_KINDS:
                if internal:
                    graph[a].add(b)
                    for who, banned, reason in RULES:
                        if a in who and b in banned:
                            report(a, b, reason)
                            break
                else:
                    for who, banned, reason in EXTERNAL_RULES:
                        if a in who and b in banned:
                            report(a, b, reason)
                            break
            elif kind == "dev" and internal:
                for who, banned, reason in DEV_RULES:
                    if a in who and b in banned:
                        report(a, b, reason + " (dev-dependency)")
                        break

    for cycle in cycles(graph):
        violations.append(
            f"crate {cycle[0]} may not depend on crate {cycle[1]}: "
            f"it closes a cycle {' -> '.join(cycle)}")

    stale = sorted(set(ALLOWED_FOR_NOW) - used_exceptions)
    return violations, stale


def cycles(graph):
    """Each elementary cycle found by depth-first search, as a list of names
    starting and ending on the same crate (one per back edge)."""
    found, state, stack = [], {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return found


def cargo_metadata():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=root, check=True, stdout=subprocess.PIPE)
    return json.loads(out.stdout)


# --- Self-test ----------------------------------------------------------

def synthetic(edges):
    """A cargo-metadata-shaped document from {crate: [(dep, kind), ...]}."""
    crates = set(edges) | {d for deps in edges.values() for d, _ in deps if d.startswith("coffre")}
    packages = []
    for c in sorted(crates):
        deps = [{"name": d, "kind": k} for d, k in edges.get(c, [])]
        packages.append({"name": c, "id": f"{c} 0.1.0 (path+file:///x/{c})", "dependencies": deps})
    return {"packages": packages, "workspace_members": [p["id"] for p in packages]}


def self_test():
    clean = {
        "coffre": [("coffre-s3", None), ("coffre-core", None), ("coffre-meta", None),
                   ("coffre-audit", None), ("coffre-disk", None), ("tokio", None)],
        "coffre-s3": [("coffre-core", None), ("coffre-audit", None), ("s3s", None)],
        "coffre-core": [("coffre-crypto", None), ("coffre-topology", None), ("tokio", None)],
        "coffre-meta": [("coffre-core", None), ("coffre-disk", None), ("redb", None),
                        ("coffre-blob", "dev"), ("coffre-crypto", "dev")],
        "coffre-audit": [("coffre-disk", None)],
        "coffre-label": [("coffre-topology", None)],
        "coffre-e2e": [("coffre-s3", None), ("coffre", "dev")],
    }
    cases = [
        ("core imports an engine", {"coffre-core": [("coffre-meta", None)]},
         "crate coffre-core may not depend on crate coffre-meta"),
        ("engine imports an engine", {"coffre-blob": [("coffre-meta", None)]},
         "crate coffre-blob may not depend on crate coffre-meta"),
        ("pure crate imports the core", {"coffre-label": [("coffre-core", None)]},
         "crate coffre-label may not depend on crate coffre-core"),
        ("pure crate does I/O", {"coffre-topology": [("tokio", None)]},
         "crate coffre-topology may not depend on crate tokio"),
        ("engine imports a front", {"coffre-node": [("coffre-s3", None)]},
         "crate coffre-node may not depend on crate coffre-s3"),
        ("front imports a front", {"coffre-admin": [("coffre-s3", None)]},
         "crate coffre-admin may not depend on crate coffre-s3"),
        ("front imports an engine", {"coffre-s3": [("coffre-meta", None)]},
         "crate coffre-s3 may not depend on crate coffre-meta"),
        ("custodian imports the core", {"coffre-kms": [("coffre-core", None)]},
         "crate coffre-kms may not depend on crate coffre-core"),
        ("disk layer imports the core", {"coffre-disk": [("coffre-core", None)]},
         "crate coffre-disk may not depend on crate coffre-core"),
        ("core speaks HTTP", {"coffre-core": [("hyper", None)]},
         "crate coffre-core may not depend on crate hyper"),
        ("dev-dependency on the binary", {"coffre-meta": [("coffre", "dev")]},
         "crate coffre-meta may not depend on crate coffre"),
        ("crate in no layer", {"coffre-utils": []},
         "crate coffre-utils is in no layer"),
        ("cycle", {"coffre-topology": [("coffre-label", None)]},
         "it closes a cycle"),
    ]
    failures = []
    violations, _ = check(synthetic(clean))
    if violations:
        failures.append(f"the clean graph was refused: {violations}")
    for title, extra, expected in cases:
        edges = {k: list(v) for k, v in clean.items()}
        for crate, deps in extra.items():
            edges.setdefault(crate, []).extend(deps)
        violations, _ = check(synthetic(edges))
        if not any(expected in v for v in violations):
            failures.append(f"{title}: expected {expected!r}, got {violations}")
    # A known exception passes, and shows as used (not stale).
    edges = {k: list(v) for k, v in clean.items()}
    edges["coffre-meta"].append(("coffre-audit", None))
    violations, stale = check(synthetic(edges))
    if violations or ("coffre-meta", "coffre-audit") in stale:
        failures.append(f"ALLOWED_FOR_NOW not honoured: {violations}")
    for f in failures:
        print(f"check-deps self-test FAILED: {f}", file=sys.stderr)
    if failures:
        return 1
    print(f"check-deps self-test: {len(cases)} forbidden graphs caught, the clean one passes")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if argv[1:]:
        print("usage: check-deps.py [--self-test]", file=sys.stderr)
        return 2
    violations, stale = check(cargo_metadata())
    for a, b in stale:
        print(f"check-deps: note: ALLOWED_FOR_NOW[({a!r}, {b!r})] is no longer needed: "
              "delete it from scripts/check-deps.py", file=sys.stderr)
    for v in violations:
        print(v)
    if violations:
        return 1
    print(f"check-deps: the crate dependency rules hold "
          f"({len(ALLOWED_FOR_NOW) - len(stale)} known exceptions in ALLOWED_FOR_NOW)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
