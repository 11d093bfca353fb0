"""The run's table, its ratios against the issue's targets, and its JSON."""

import json
import pathlib

# (label, numerator, denominator, factor): numerator req/s >= factor x denominator req/s, at c=16.
# The hot-path issue's targets (the earlier benchmark issue asked notify >= 2 x, rpc >= 0.3 x, +1.5 ms).
RATIO_TARGETS = [
    ("broadcast (no queue) >= 0.5 x hello-world", "broadcast", "hello", 0.5),
    ("broadcast (1 queue) >= 0.5 x hello-world", "broadcast_queue", "hello", 0.5),
    ("broadcast >= 1.3 x pika connection per thread", "broadcast", "threadlocal", 1.3),
    ("notify >= 1.8 x management API", "notify", "management", 1.8),
    ("rpc >= 0.35 x hello-world", "rpc", "hello", 0.35),
]
RPC_P50_SLACK_MS = 0.6


def targets(scenarios):
    """Each target with its measured value and PASS/FAIL."""
    rows = []
    for label, numerator, denominator, factor in RATIO_TARGETS:
        if numerator not in scenarios or denominator not in scenarios:
            continue
        ratio = (
            scenarios[numerator]["c16"]["requests_per_s"] / scenarios[denominator]["c16"]["requests_per_s"]
        )
        rows.append({"target": label, "measured": round(ratio, 2), "needed": factor, "pass": ratio >= factor})
    if "rpc" in scenarios and "hello" in scenarios:
        gap = scenarios["rpc"]["c1"]["p50_ms"] - scenarios["hello"]["c1"]["p50_ms"]
        rows.append(
            {
                "target": f"rpc p50 at c=1 <= hello-world's + {RPC_P50_SLACK_MS} ms",
                "measured": round(gap, 3),
                "needed": RPC_P50_SLACK_MS,
                "pass": gap <= RPC_P50_SLACK_MS,
            }
        )
    return rows


def _cells(load):
    if load is None:
        return f"{'':>9} {'':>7} {'':>7}"
    return f"{load['requests_per_s']:>9.0f} {load['p50_ms']:>7.2f} {load['p99_ms']:>7.2f}"


def table(scenarios, raw):
    hello = scenarios.get("hello", {}).get("c16", {}).get("requests_per_s")
    lines = [
        f"{'scenario':<46} {'c=16 req/s':>9} {'p50 ms':>7} {'p99 ms':>7} | "
        f"{'c=1 req/s':>9} {'p50 ms':>7} {'p99 ms':>7} | {'x hello':>7} {'failed':>6}",
    ]
    lines.append("-" * len(lines[0]))
    for scenario in scenarios.values():
        c16, c1 = scenario["c16"], scenario.get("c1")
        ratio = f"{c16['requests_per_s'] / hello:>7.2f}" if hello else f"{'':>7}"
        failed = c16["failed"] + (c1["failed"] if c1 else 0)
        lines.append(f"{scenario['label']:<46} {_cells(c16)} | {_cells(c1)} | {ratio} {failed:>6}")
    for name, figures in raw.items():
        ratio = f"{figures['requests_per_s'] / hello:>7.2f}" if hello else f"{'':>7}"
        lines.append(f"{name:<46} {_cells(None)} | {_cells(figures)} | {ratio} {'':>6}")
    return "\n".join(lines)


CPU_GROUPS = ("daemons", "apache", "rabbitmq", "responders", "wrk")


def cpu_table(scenarios):
    """CPU ms per request by process group at c=16: where each scenario's cost lands."""
    header = " ".join(f"{group:>10}" for group in CPU_GROUPS)
    lines = [f"{'CPU ms per request at c=16':<46} {header} {'switches':>9}"]
    for scenario in scenarios.values():
        spent = scenario["c16"].get("cpu_ms", {})
        cells = [f"{spent[group]:>10.3f}" if group in spent else f"{'':>10}" for group in CPU_GROUPS]
        switches = scenario["c16"].get("daemon_switches")
        cells.append(f"{switches:>9.2f}" if switches is not None else f"{'':>9}")
        lines.append(f"{scenario['label']:<46} " + " ".join(cells))
    lines.append("(switches: the daemons' context switches per request, all threads)")
    return "\n".join(lines)


# broadcast goes through the direct publisher (``publisher = direct``, the default): no hand-off to
# the I/O thread any more, which the broadcast_handoff scenario still measures for ``publisher = pika``.
PARTS = (
    ("mod_wsgi and hello-world's app", None, "hello"),
    ("Hutch's WSGI stack (Paste, Beaker, auth, message, JSON)", "hello", "broadcast_stack"),
    ("direct publish: send, confirm, return (and RabbitMQ)", "broadcast_stack", "broadcast"),
)


def parts(scenarios):
    """Where a broadcast's CPU goes: each part is one scenario's figures minus the one before it.

    Both the daemons' CPU ms per request and the whole machine's (daemons,
    Apache, RabbitMQ, wrk), with the c=16 req/s each step reaches.
    """
    if not all(name in scenarios for _, _, name in PARTS):
        return []
    rows = []
    for label, before, after in PARTS:
        now = scenarios[after]["c16"]
        spent_before = scenarios[before]["c16"]["cpu_ms"] if before else {}
        rows.append(
            {
                "part": label,
                "daemons_ms": round(now["cpu_ms"]["daemons"] - spent_before.get("daemons", 0), 3),
                "all_ms": round(sum(now["cpu_ms"].values()) - sum(spent_before.values()), 3),
                "requests_per_s": now["requests_per_s"],
                "x_hello": round(now["requests_per_s"] / scenarios["hello"]["c16"]["requests_per_s"], 2),
            }
        )
    return rows


def parts_lines(rows):
    lines = [
        f"{'where a broadcast goes (CPU ms per request, c=16)':<56} {'daemons':>8} {'all':>7} "
        f"{'req/s':>7} {'x hello':>7}"
    ]
    for row in rows:
        lines.append(
            f"{row['part']:<56} {row['daemons_ms']:>+8.3f} {row['all_ms']:>+7.3f} "
            f"{row['requests_per_s']:>7.0f} {row['x_hello']:>7.2f}"
        )
    return "\n".join(lines)


def target_lines(rows):
    lines = [f"{'target':<46} {'measured':>9} {'needed':>7}  result"]
    for row in rows:
        unit = " ms" if "p50" in row["target"] else ""
        needed = f"<={row['needed']}{unit}" if unit else f">={row['needed']}"
        result = "PASS" if row["pass"] else "FAIL"
        lines.append(f"{row['target']:<46} {row['measured']:>9}{unit:<3} {needed:>9}  {result}")
    return "\n".join(lines)


def write_json(path, document):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
