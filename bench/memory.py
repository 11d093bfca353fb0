"""Does a gateway process grow?  RSS of each mod_wsgi daemon over 100k requests."""

from .load import run_wrk


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def sample(pids, requests):
    return {"requests": requests, "rss_kib": {str(pid): rss_kib(pid) for pid in pids}}


def measure(server, url, authorization, total=100_000, connections=16, chunk_seconds=5):
    """Drive ``total`` requests at ``url`` in wrk chunks, sampling every daemon's RSS after each.

    The first sample is taken after a warm-up (the first requests load
    modules and open the AMQP connection), so growth means a leak.
    """
    run_wrk(url, connections, 3, authorization)
    pids = server.daemon_pids()
    samples = [sample(pids, 0)]
    done = 0
    failed = 0
    while done < total:
        load = run_wrk(url, connections, chunk_seconds, authorization)
        done += load.requests
        failed += load.failed
        samples.append(sample(pids, done))
    if server.daemon_pids() != pids:
        raise RuntimeError("a daemon process was replaced during the memory run")
    first, last = samples[0]["rss_kib"], samples[-1]["rss_kib"]
    half = next(s for s in samples if s["requests"] >= total // 2)
    return {
        "url": url,
        "requests": done,
        "failed": failed,
        "samples": samples,
        "at": {"0": first, str(half["requests"]): half["rss_kib"], str(done): last},
        "growth_kib": {pid: last[pid] - first[pid] for pid in first},
        "growth_second_half_kib": {pid: last[pid] - half["rss_kib"][pid] for pid in first},
    }
