"""CPU time per request, by process group: where a scenario's cost lands.

Read from /proc (utime + stime of every thread of a process) before and
after a load: the gateway's daemons, Apache's own processes, RabbitMQ
(shared, so other people's work shows up too), the responders, and wrk.
Also the daemons' context switches per request: on these machines a switch
costs more than most Python work, and each time a request thread waits for
I/O or for the GIL it is one.
"""

import os
import pathlib
import resource

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def context_switches(pid):
    """Voluntary and involuntary context switches of every thread of ``pid`` so far."""
    total = 0
    try:
        tasks = list(pathlib.Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        try:
            text = (task / "status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def processes_named(name):
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def broker_pids(port=5672):
    """The RabbitMQ node listening on ``port`` (teammates may run private nodes beside it)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = pathlib.Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].rsplit(":", 1)[1] == f"{port:04X}" and fields[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for pid in processes_named("beam.smp"):
        try:
            descriptors = list(pathlib.Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in inodes:
                    return [pid]
            except OSError:
                continue
    return []


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """``groups`` maps a name to a function returning that group's pids now."""

    def __init__(self, groups):
        self.groups = groups

    def snapshot(self):
        taken = {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}
        taken["wrk"] = {0: children_cpu_seconds()}
        return taken

    def daemon_switches(self):
        """{pid: context switches so far} of the gateway's daemons ({} where there are none)."""
        pids = self.groups.get("daemons")
        return {pid: context_switches(pid) for pid in pids()} if pids else {}

    @staticmethod
    def switches_per_request(before, after, requests):
        """Daemons' context switches per request between two ``daemon_switches`` (None: no daemons)."""
        if not after:
            return None
        spent = sum(count - before[pid] for pid, count in after.items() if pid in before)
        return round(spent / max(requests, 1), 2)

    @staticmethod
    def per_request_ms(before, after, requests):
        """CPU ms per request of each group between two snapshots (pids present in both)."""
        result = {}
        for name, now in after.items():
            spent = sum(seconds - before[name][pid] for pid, seconds in now.items() if pid in before[name])
            result[name] = round(spent * 1000 / max(requests, 1), 3)
        return result
