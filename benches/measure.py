"""How the harness measures one process: wall time, peak RSS and peak anonymous RSS.

Shared by floor.py and memory.py. Peak RSS comes from wait4(2) and counts
every resident page the process mapped, file pages included: a CSV source
that Polars memory-maps is counted whole once it has been read, although
those pages are the kernel's clean page cache, dropped under pressure
(memory.py runs such a source in a budget a fraction of its size). Peak
anonymous RSS (`RssAnon` in /proc/PID/status, sampled every 10 ms) is the
memory the process allocated itself: what a memory limit has to leave room
for.
"""

import os
import subprocess
import threading
import time
from collections import namedtuple

# code: exit code; secs: wall time; rss, anon: peaks in MiB; err: stderr.
Measured = namedtuple("Measured", "code secs rss anon err")


def run(cmd, env=None, preexec_fn=None):
    """Runs cmd to its end and measures it."""
    anon = [0]
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                         preexec_fn=preexec_fn)
    done = threading.Event()

    def sample():
        status = f"/proc/{p.pid}/status"
        while not done.is_set():
            try:
                with open(status) as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            anon[0] = max(anon[0], int(line.split()[1]))
            except OSError:
                return
            time.sleep(0.01)

    t = threading.Thread(target=sample)
    t.start()
    err = p.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    secs = time.perf_counter() - start
    done.set()
    t.join()
    p.stderr.close()
    return Measured(os.waitstatus_to_exitcode(status), secs, usage.ru_maxrss / 1024.0, anon[0] / 1024.0, err)
