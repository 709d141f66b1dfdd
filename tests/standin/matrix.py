"""The verdict matrix's bookkeeping (scripts/verdict-matrix.sh drives it; stdlib only).

  matrix.py plan SPEC SCENARIO_DIR OUT_DIR [--reps N]
      reads the spec (tests/standin/matrix.yaml), writes OUT_DIR/plan.json and prints one job
      per line for xargs, longest scenario first:  ID <TAB> TIMEOUT_S <TAB> SCENARIO <TAB> COMMAND
  matrix.py judge OUT_DIR
      reads every job's JSON report (OUT_DIR/ID.json, exit status in OUT_DIR/ID.rc), compares
      the failed expectations with the spec, prints the table and exits 1 on any wrong verdict,
      on a run that could not run, or when a rule judged in the library is broken by no variant.
"""

import glob
import json
import os
import re
import sys

MAX_REPS = 10
# Added to a scenario's duration for a run's `timeout`: start-up, the command's SIGTERM grace,
# the emulator's shutdown, judging.
RUN_OVERHEAD_S = 30


class SpecError(Exception):
    pass


def parse_spec(path):
    """The strict spec format (see the header of matrix.yaml): a YAML subset, checked line by line."""
    variants = {}
    current = None
    in_scenarios = False
    seen_root = False
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for n, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        indent = len(line) - len(line.lstrip(" "))
        text = line.strip()

        def bad(why):
            return SpecError(f"{path}:{n}: {why}: {raw.strip()!r}")

        if indent == 0:
            if text != "variants:" or seen_root:
                raise bad("expected `variants:` once at the top level")
            seen_root = True
        elif indent == 2:
            m = re.fullmatch(r"([a-z0-9][a-z0-9-]*):", text)
            if not m or not seen_root:
                raise bad("expected a variant name (`name:`, lowercase, digits, dashes)")
            if m.group(1) in variants:
                raise bad("variant named twice")
            current = {"name": m.group(1), "line": n}
            variants[current["name"]] = current
            in_scenarios = False
        elif indent == 4:
            if current is None:
                raise bad("a setting outside a variant")
            key, sep, value = text.partition(":")
            value = value.strip()
            if not sep or key not in ("command", "reps", "scenarios") or key in current:
                raise bad("expected `command:`, `reps:` or `scenarios:`, each once")
            in_scenarios = False
            if key == "command":
                if not value:
                    raise bad("empty command")
                current["command"] = value.split()
            elif key == "reps":
                if not re.fullmatch(r"[0-9]+", value) or not 1 <= int(value) <= MAX_REPS:
                    raise bad(f"reps must be 1-{MAX_REPS}")
                current["reps"] = int(value)
            elif value == "all":
                current["scenarios"] = "all"
            elif value == "":
                current["scenarios"] = {}
                in_scenarios = True
            else:
                raise bad("scenarios is `all` or a list of `SCENARIO: pass | [expectation, ...]` below it")
        elif indent == 6 and in_scenarios:
            m = re.fullmatch(r"([a-z0-9][a-z0-9._-]*): (pass|\[([a-z_#0-9, ]+)\])", text)
            if not m:
                raise bad("expected `SCENARIO: pass` or `SCENARIO: [expectation, ...]`")
            name = m.group(1)
            if name in current["scenarios"]:
                raise bad("scenario named twice for this variant")
            if m.group(2) == "pass":
                must_fail = []
            else:
                must_fail = [x.strip() for x in m.group(3).split(",")]
                if any(not re.fullmatch(r"[a-z_]+(#[0-9]+)?", x) for x in must_fail):
                    raise bad("expectation names are like `backoff` or `reconnects#2`")
                if len(set(must_fail)) != len(must_fail):
                    raise bad("an expectation named twice")
            current["scenarios"][name] = sorted(must_fail)
        else:
            raise bad("unexpected indentation")
    if not variants:
        raise SpecError(f"{path}: no variants")
    for v in variants.values():
        missing = [k for k in ("command", "reps", "scenarios") if k not in v]
        if missing:
            raise SpecError(f"{path}:{v['line']}: variant {v['name']} lacks {', '.join(missing)}")
        if v["scenarios"] != "all" and not v["scenarios"]:
            raise SpecError(f"{path}:{v['line']}: variant {v['name']} lists no scenario")
    return variants


def duration_s(text):
    m = re.fullmatch(r"([0-9]+)(ms|s|m)", text)
    if not m:
        raise SpecError(f"unsupported duration {text!r}")
    value, unit = int(m.group(1)), m.group(2)
    return {"ms": value / 1000, "s": value, "m": value * 60}[unit]


def library(scenario_dir):
    """Scenario name (file stem) -> (path, duration in s)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(scenario_dir, "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            m = re.search(r"^duration:\s*(\S+)\s*$", f.read(), re.M)
        if not m:
            raise SpecError(f"{path}: no top-level `duration:` line")
        out[os.path.splitext(os.path.basename(path))[0]] = (path, duration_s(m.group(1)))
    if not out:
        raise SpecError(f"no scenario files in {scenario_dir}")
    return out


def plan(spec_path, scenario_dir, out_dir, reps_override):
    variants = parse_spec(spec_path)
    scenarios = library(scenario_dir)
    jobs = []
    for v in variants.values():
        if v["scenarios"] == "all":
            wanted = {name: [] for name in scenarios}
        else:
            unknown = sorted(set(v["scenarios"]) - set(scenarios))
            if unknown:
                raise SpecError(f"{spec_path}: variant {v['name']} names unknown scenario(s) "
                                f"{', '.join(unknown)} (not in {scenario_dir})")
            wanted = v["scenarios"]
        reps = reps_override or v["reps"]
        for scenario, must_fail in wanted.items():
            path, dur = scenarios[scenario]
            for rep in range(1, reps + 1):
                jobs.append({
                    "id": f"{v['name']}--{scenario}--{rep}",
                    "variant": v["name"],
                    "good": v["scenarios"] == "all",
                    "scenario": scenario,
                    "path": path,
                    "rep": rep,
                    "duration_s": dur,
                    "must_fail": must_fail,
                    "command": v["command"],
                })
    # Longest first, so the parallel runs finish together.
    jobs.sort(key=lambda j: (-j["duration_s"], j["id"]))
    with open(os.path.join(out_dir, "plan.json"), "w", encoding="utf-8") as f:
        json.dump({"jobs": jobs, "variants": list(variants)}, f, indent=1)
    for j in jobs:
        timeout = int(j["duration_s"]) + RUN_OVERHEAD_S
        print(f"{j['id']}\t{timeout}\t{j['path']}\t{' '.join(j['command'])}")


def outcome(out_dir, job):
    """(failed expectation names, {name: message}, None) or (None, None, why it could not run)."""
    base = os.path.join(out_dir, job["id"])
    try:
        with open(base + ".rc", encoding="utf-8") as f:
            rc = int(f.read().strip())
    except (OSError, ValueError):
        return None, None, "no exit status (the run never finished)"
    if rc == 124 or rc == 137:
        return None, None, f"timed out (exit {rc})"
    if rc not in (0, 1):
        return None, None, f"espsim test exited {rc} (see {base}.log)"
    try:
        with open(base + ".json", encoding="utf-8") as f:
            report = json.load(f)
        (run,) = report["runs"]
        failed, messages = [], {}
        for e in run["expectations"]:
            if not e["passed"]:
                failed.append(e["name"])
                messages[e["name"]] = e["message"]
        command = run.get("command")
        # The command fails the run only by exiting non-zero (or a signal it did not get from us).
        if command and not (command["status"] == "killed"
                            or (command["status"] == "exited" and command.get("code") == 0)):
            failed.append("command")
            messages["command"] = f"{command['status']} {command.get('code', '')}".strip()
        return sorted(failed), messages, None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, None, f"no usable JSON report ({type(e).__name__}: {e}; see {base}.log)"


def judge(out_dir):
    with open(os.path.join(out_dir, "plan.json"), encoding="utf-8") as f:
        p = json.load(f)
    jobs = p["jobs"]
    cells = {}  # (variant, scenario) -> list of (rep, ok, note)
    wrong = unrunnable = 0
    judged_rules = set()
    broken_rules = set()
    for j in sorted(jobs, key=lambda j: (p["variants"].index(j["variant"]), j["scenario"], j["rep"])):
        failed, messages, why = outcome(out_dir, j)
        key = (j["variant"], j["scenario"])
        if why is not None:
            unrunnable += 1
            cells.setdefault(key, []).append((j["rep"], False, f"rep {j['rep']}: COULD NOT RUN: {why}"))
            continue
        if j["good"]:
            with open(os.path.join(out_dir, j["id"] + ".json"), encoding="utf-8") as f:
                for e in json.load(f)["runs"][0]["expectations"]:
                    judged_rules.add(e["name"].split("#")[0])
        broken_rules.update(x.split("#")[0] for x in j["must_fail"])
        if failed == j["must_fail"]:
            cells.setdefault(key, []).append((j["rep"], True, ""))
            continue
        wrong += 1
        notes = []
        for name in sorted(set(failed) - set(j["must_fail"])):
            notes.append(f"{name} failed: {messages[name]}")
        for name in sorted(set(j["must_fail"]) - set(failed)):
            notes.append(f"{name} held (must fail)")
        cells.setdefault(key, []).append(
            (j["rep"], False, f"rep {j['rep']}: " + "; ".join(notes) + f"  [{j['id']}.log]"))

    want = {}
    for j in jobs:
        want[(j["variant"], j["scenario"])] = "pass" if not j["must_fail"] else "fail " + ",".join(j["must_fail"])
    vw = max(len(v) for v, _ in cells) if cells else 7
    sw = max(len(s) for _, s in cells) if cells else 8
    ew = max(len(x) for x in want.values()) if want else 8
    print(f"{'variant':<{vw}}  {'scenario':<{sw}}  {'expected':<{ew}}  reps")
    last = None
    for (variant, scenario), results in cells.items():
        if last is not None and variant != last:
            print()
        last = variant
        marks = " ".join("✓" if ok else "✗" for _, ok, _ in sorted(results))
        print(f"{variant:<{vw}}  {scenario:<{sw}}  {want[(variant, scenario)]:<{ew}}  {marks}")
        for _, ok, note in sorted(results):
            if not ok:
                print(f"{'':<{vw}}    ✗ {note}")

    uncovered = sorted(judged_rules - broken_rules)
    total = len(jobs)
    print()
    print(f"verdict matrix: {total} runs, {total - wrong - unrunnable} as specified, "
          f"{wrong} wrong, {unrunnable} could not run")
    if uncovered:
        print("rules judged in the library that no variant breaks: " + ", ".join(uncovered))
    return 1 if wrong or unrunnable or uncovered else 0


def main(argv):
    try:
        if len(argv) >= 4 and argv[0] == "plan":
            reps = None
            if argv[4:6] and argv[4] == "--reps":
                if not re.fullmatch(r"[0-9]+", argv[5]) or not 1 <= int(argv[5]) <= MAX_REPS:
                    raise SpecError(f"--reps must be 1-{MAX_REPS}")
                reps = int(argv[5])
            elif argv[4:]:
                raise SpecError(f"unknown argument {argv[4]}")
            plan(argv[1], argv[2], argv[3], reps)
            return 0
        if len(argv) == 2 and argv[0] == "judge":
            return judge(argv[1])
    except SpecError as e:
        print(f"verdict matrix: {e}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
