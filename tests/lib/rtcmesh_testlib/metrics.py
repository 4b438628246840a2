"""Prometheus text exposition format 0.0.4."""
import re

from .failures import require

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE_RE = re.compile(rf"^({METRIC_NAME})(\{{(.*)\}})?[ ]+(\S+)([ ]+-?\d+)?$")
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\\\|\\"|\\n)*)"\s*(,|$)')
# Values are Go ParseFloat numbers: NaN and Inf in any case (prometheus-cpp writes "Nan").
FLOAT_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(?i:inf|infinity)$|^(?i:nan)$")


def parse_prometheus(text, typed_only=False):
    """{(name, frozenset(label items)): float}; raises TestFailure on any line that
    is not a sample, a # HELP, a # TYPE, another comment or empty. typed_only:
    every sample belongs to a family with a # TYPE line (name, or name without
    _bucket/_sum/_count)."""
    out, types = {}, {}
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                require(len(parts) >= 3 and re.fullmatch(METRIC_NAME, parts[2]),
                        f"/metrics line {n}: bad {parts[1]}: {line!r}")
                if parts[1] == "TYPE":
                    require(len(parts) == 4 and parts[3] in ("counter", "gauge", "histogram", "summary",
                                                             "untyped"),
                            f"/metrics line {n}: bad TYPE: {line!r}")
                    types[parts[2]] = parts[3]
            continue
        m = SAMPLE_RE.match(line)
        require(m, f"/metrics line {n} is not a sample: {line!r}")
        name, _, labels, value, _ = m.groups()
        require(FLOAT_RE.match(value), f"/metrics line {n}: bad value {value!r}")
        if typed_only:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            require(name in types or family in types, f"/metrics line {n}: sample without TYPE: {line!r}")
        items = []
        if labels:
            rest = labels.rstrip(",")
            pos = 0
            while pos < len(rest):
                lm = LABEL_RE.match(rest, pos)
                require(lm and lm.end() > pos, f"/metrics line {n}: bad labels {labels!r}")
                items.append((lm.group(1), lm.group(2)))
                pos = lm.end()
        key = (name, frozenset(items))
        require(key not in out, f"/metrics line {n}: duplicate sample {line!r}")
        out[key] = float(value)
    return out
