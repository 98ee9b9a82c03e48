import subprocess, collections, sys
d = sys.argv[1]
p = subprocess.run(["perf", "script", "-i", f"{d}/perf.data", "-F", "comm,ip,sym,dso"], capture_output=True, text=True)
c = collections.Counter(); stack = []; first = True
def cat(stack):
    syms = [x[0] for x in stack]; dsos = [x[1] for x in stack]
    leaf, ldso = (stack[0] if stack else ("", ""))
    s = set(syms)
    if "kernel" in ldso:
        for key, name in [("__sys_shutdown", "kernel: shutdown"), ("sock_close", "kernel: close"), ("io_accept", "kernel: accept"), ("do_accept", "kernel: accept"),
                          ("sock_sendmsg", "kernel: send (incl. loopback delivery to the client)"), ("sock_recvmsg", "kernel: recv"),
                          ("__sys_setsockopt", "kernel: setsockopt"), ("__sys_getpeername", "kernel: getpeername"),
                          ("io_cqring_wait", "kernel: waiting/scheduling (io_uring wait)"), ("schedule", "kernel: waiting/scheduling (io_uring wait)"),
                          ("finish_task_switch.isra.0", "kernel: waiting/scheduling (io_uring wait)")]:
            if key in s: return name
        if any(x.startswith("asm_") or x.startswith("sysvec") for x in syms): return "kernel: interrupts/timers"
        return "kernel: other"
    if any(x.startswith(("aws_lc", "__ecp", "ecp_", "Lcurve", "Lbignum", "bignum", "p256", "curve25519")) for x in syms[:3]) or "aws-lc" in leaf: return "crypto (aws-lc)"
    if leaf.startswith("mi_") or leaf.startswith("_mi_"): return "allocator"
    if "rustls" in leaf: return "rustls (non-crypto)"
    if "ringest" in leaf: return "ringest"
    return "other user: " + leaf[:40]
for line in p.stdout.splitlines() + [""]:
    if not line.strip():
        if stack: c[cat(stack)] += 1
        stack = []; continue
    if line.startswith((" ", "\t")):
        parts = line.split()
        if len(parts) >= 3: stack.append((parts[1], parts[-1]))
tot = sum(c.values())
for k, v in c.most_common(25): print(f"{100*v/tot:5.1f}%  {k}")
