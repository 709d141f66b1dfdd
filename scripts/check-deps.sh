#!/usr/bin/env bash
# Dependency directions (ARCHITECTURE.md, "What may depend on what"): reads every manifest with
# `cargo metadata --no-deps` (no resolution, no network) and fails, naming the edge and what is
# allowed instead, when a crate depends on something its layer may not.
#
#   bash scripts/check-deps.sh
#
# Checked: the host workspace, plus fuzz/ and the two firmwares (their own workspaces).
# - Normal dependencies on our crates must be in ALLOWED below (the layer picture).
# - The pure crates (protocol, firmware, faults) may use only the outside crates listed in
#   PURE; faults may use tokio only for `sync`/`time` (no sockets: no `net`, no `full`).
# - client and probe must not pull in server-side crates (SERVER_ONLY).
# - Dev-dependencies are looser: a test may use any of our crates (client's and probe's socket
#   tests run a real emulator), except one that depends on the crate under test (a cycle: cargo
#   would build the crate twice and its types would not match). Build dependencies follow the
#   normal rules.
set -euo pipefail
cd "$(dirname "$0")/.."

meta=$(mktemp)
trap 'rm -f "$meta"' EXIT
for manifest in Cargo.toml fuzz/Cargo.toml crates/firmware/esp32c3/Cargo.toml \
  crates/firmware/esp32/Cargo.toml; do
  cargo metadata --format-version 1 --no-deps --manifest-path "$manifest" >>"$meta"
  echo >>"$meta"
done

python3 - "$meta" <<'PY'
import json, sys

# Which of our crates each crate may depend on (normal and build dependencies).
ALLOWED = {
    "espsim-protocol": set(),
    "espsim-firmware": {"espsim-protocol"},
    # A user's device described in YAML: device logic beside the firmware, behind its trait.
    "espsim-device-file": {"espsim-firmware", "espsim-faults"},
    "espsim-faults": set(),
    "espsim-emulator": {"espsim-protocol", "espsim-firmware", "espsim-device-file",
                        "espsim-faults"},
    "espsim-client": {"espsim-protocol"},
    "espsim-probe": {"espsim-protocol"},
    "espsim-phone": set(),
    "espsim-harness": {"espsim-protocol", "espsim-faults", "espsim-emulator", "espsim-client",
                       "espsim-phone"},
    "espsim": {"espsim-protocol", "espsim-faults", "espsim-emulator", "espsim-client",
               "espsim-probe", "espsim-phone", "espsim-harness"},
    "espsim-tests": set(),  # black-box: the binary, and our crates as dev-dependencies only
    "espsim-bench": {"espsim-protocol", "espsim-faults", "espsim-emulator", "espsim-client"},
    "espsim-fuzz": {"espsim-protocol", "espsim-firmware", "espsim-faults", "espsim-emulator",
                    "espsim-harness", "espsim-device-file"},
    "espsim-esp32c3": {"espsim-firmware"},
    "espsim-esp32": {"espsim-firmware"},
    # A user's own no_std device logic: the device boundary only (it builds for the chip).
    "espsim-example-rust-device": {"espsim-firmware"},
}

# The only outside crates the pure crates may use (normal dependencies).
PURE = {
    "espsim-protocol": {"serde", "serde_json", "thiserror", "schemars"},
    "espsim-firmware": {"rand_core", "rand_pcg", "thiserror"},
    "espsim-faults": {"serde", "serde_json", "thiserror", "schemars", "humantime", "rand", "regex",
                      "rand_core", "rand_pcg", "tracing", "tokio"},
    "espsim-example-rust-device": set(),
}
# tokio features a pure crate may switch on (a channel, a clock): nothing that opens sockets.
TOKIO_PURE_FEATURES = {"sync", "time", "macros", "rt", "test-util"}

# Server-side crates: the client and the probe talk to a device, they never serve one.
SERVER_ONLY = {"axum", "hickory-server", "rcgen", "tower", "tower-http", "hyper-util", "askama",
               "quick-junit"}
NO_SERVER = {"espsim-client", "espsim-probe", "espsim-device-file"}

packages = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    for p in json.loads(line)["packages"]:
        packages[p["name"]] = p

ours = set(ALLOWED)
problems = []

unknown = sorted(n for n in packages if n not in ALLOWED)
for name in unknown:
    problems.append(
        f"{name} is not in the dependency table: add it to ALLOWED in scripts/check-deps.sh "
        f"and give it a paragraph and a place in the layer picture of ARCHITECTURE.md")

def listing(names):
    return ", ".join(sorted(names))

def normal_internal(name):
    p = packages.get(name)
    if p is None:
        return set()
    return {d["name"] for d in p["dependencies"]
            if d["kind"] in (None, "build") and d["name"] in ours}

def dependents_closure(target):
    """Our crates that normally depend on `target`, directly or not."""
    found, changed = set(), True
    while changed:
        changed = False
        for n in packages:
            if n not in found and normal_internal(n) & (found | {target}):
                found.add(n)
                changed = True
    return found

for name, p in sorted(packages.items()):
    if name not in ALLOWED:
        continue
    allowed = ALLOWED[name]
    above = None
    for d in p["dependencies"]:
        dep, kind = d["name"], d["kind"] or "normal"
        if kind in ("normal", "build"):
            if dep in ours and dep not in allowed:
                may = ", ".join(sorted(allowed)) or "none of our crates"
                problems.append(f"{name} -> {dep} ({kind}): not allowed; {name} may depend on "
                                f"{may}")
            if name in PURE and dep not in ours and dep not in PURE[name]:
                problems.append(
                    f"{name} -> {dep} ({kind}): {name} is a pure crate; its outside "
                    f"dependencies are limited to {listing(PURE[name])}")
            if name in PURE and dep == "tokio":
                extra = set(d["features"]) - TOKIO_PURE_FEATURES
                if extra or d.get("uses_default_features", True):
                    what = ", ".join(sorted(extra)) or "default features"
                    problems.append(
                        f"{name} -> tokio with {what}: a pure crate may use tokio only with "
                        f"default-features = false and {listing(TOKIO_PURE_FEATURES)} "
                        f"(no sockets: the faulty listener and stream live in the emulator)")
            if name in NO_SERVER and dep in SERVER_ONLY:
                problems.append(f"{name} -> {dep} ({kind}): {name} talks to devices and never "
                                f"serves; server-side crates belong to the emulator")
        elif kind == "dev" and dep in ours:
            if above is None:
                above = dependents_closure(name)
            if dep in above:
                problems.append(f"{name} -> {dep} (dev): {dep} depends on {name}, so this is a "
                                f"cycle (cargo builds {name} twice and the types do not match)")

if problems:
    print("dependency directions: forbidden edges (see ARCHITECTURE.md, "
          "'What may depend on what'):", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    sys.exit(1)
print(f"dependency directions: {len(packages)} crates, every edge allowed")
PY
