#!/usr/bin/env python3
"""Builds each layering probe (tests/layering/CMakeLists.txt) and checks that it
compiles or fails as declared. A probe that must fail has to fail for the one
reason that counts: its header is not found. Also checks that no source under
src/ or apps/ climbs out of its folder with a relative include ("../")."""
import argparse
import pathlib
import re
import subprocess
import sys


def build(build_dir, target):
    proc = subprocess.run(["cmake", "--build", build_dir, "--target", target],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("probes", nargs="+", help="target:OK|FAILS:header")
    args = ap.parse_args()
    failures = []
    for spec in args.probes:
        target, expect, header = spec.split(":", 2)
        rc, out = build(args.build_dir, target)
        if expect == "OK":
            verdict = "ok" if rc == 0 else "FAILED to compile"
        else:
            missing = re.search(re.escape(header) + r": No such file or directory", out)
            if rc == 0:
                verdict = "COMPILED (the include should be invisible)"
            elif not missing:
                verdict = "failed for another reason"
            else:
                verdict = "ok (not visible)"
        print(f"{target:40} {expect:5} {header:32} {verdict}")
        if not verdict.startswith("ok"):
            failures.append(target)
            print(out[-3000:])
    climbing = []
    for root in ("src", "apps"):
        for path in sorted(pathlib.Path(args.source_dir, root).rglob("*.[ch]pp")):
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if re.match(r'\s*#\s*include\s*"\.\./', line):
                    climbing.append(f"{path}:{n}: {line.strip()}")
    for c in climbing:
        print("relative include out of its folder:", c)
    if failures or climbing:
        print(f"{len(failures)} probe(s) wrong, {len(climbing)} climbing include(s)")
        return 1
    print(f"all {len(args.probes)} probes as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
