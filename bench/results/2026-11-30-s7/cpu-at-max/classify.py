import sys, subprocess, collections, re
# Splits ringest's perf samples (shards + writer) by kernel path; converts shares to CPU-us/msg with the run's server figure (summary.txt).
def cats(stack):
    s = set(stack)
    if "handle_softirqs" in s or "net_rx_action" in s:
        if s & {"tcp_write_xmit", "__tcp_push_pending_frames", "tcp_tsq_handler"}: return "softirq: the sender's data transmitted (loopback)"
        return "softirq: receive path (loopback)"
    if "tcp_recvmsg" in s: return "tcp_recvmsg (copy to user)"
    if any(x.startswith("aws_lc") for x in s): return "AES-GCM"
    if any("memmove" in x for x in s): return "memmove (frames into batches, writer staging)"
    if any(x.startswith("[k]") for x in s) or any(x.startswith("io_") or x.startswith("__io") for x in s): return "other kernel (io_uring, writes)"
    return "other"
for d in sys.argv[1:]:
    p = subprocess.run(["perf", "script", "-i", f"{d}/perf.data", "-F", "comm,ip,sym"], capture_output=True, text=True)
    c = collections.Counter(); comm = None; stack = []
    def flush():
        if comm and comm.startswith("ringest"): c[cats(stack)] += 1
    for line in p.stdout.splitlines():
        if not line.strip(): flush(); comm = None; stack = []; continue
        if not line.startswith((" ", "\t")): comm = line.split()[0]; stack = []
        else: stack.append(line.split()[1] if len(line.split()) > 1 else "")
    flush()
    summ = open(f"{d}/summary.txt").read()
    server = float(re.search(r"server ([0-9.]+)", summ).group(1)); rate = re.search(r"written ([0-9.]+M)", summ).group(1)
    tot = sum(c.values())
    print(f"== {d}: {rate} msg/s, server {server} CPU-us/msg, {tot} ringest samples")
    for k, v in c.most_common(): print(f"   {server*v/tot:.3f}  {100*v/tot:4.1f}%  {k}")
