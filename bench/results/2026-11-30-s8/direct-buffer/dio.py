import mmap, os, sys, time, resource
def stat():
    with open('/proc/stat') as f:
        v=[int(x) for x in f.readline().split()[1:]]
    return sum(v)-v[3]-v[4], sum(v)
def run(huge, bs, total, path):
    m = mmap.mmap(-1, max(bs, 2<<20)*2, flags=mmap.MAP_PRIVATE|mmap.MAP_ANONYMOUS)
    if huge: m.madvise(mmap.MADV_HUGEPAGE)
    else: m.madvise(mmap.MADV_NOHUGEPAGE)
    off = 0 if not huge else 0
    m[:] = (b'x'*300+b'\n') * (len(m)//301) + b'y'*(len(m)%301)
    mv = memoryview(m)
    # align to 2 MiB for huge
    base = 0
    fd = os.open(path, os.O_WRONLY|os.O_CREAT|os.O_TRUNC|os.O_DIRECT, 0o644)
    r0 = resource.getrusage(resource.RUSAGE_SELF); s0=stat(); t0=time.time()
    n = total//bs
    for i in range(n):
        os.pwrite(fd, mv[base:base+bs], i*bs)
    r1 = resource.getrusage(resource.RUSAGE_SELF); s1=stat(); t1=time.time()
    os.close(fd); os.unlink(path)
    cpu = (r1.ru_utime-r0.ru_utime)+(r1.ru_stime-r0.ru_stime)
    busy = (s1[0]-s0[0])/os.sysconf('SC_CLK_TCK')
    gb = n*bs/1e9
    ah = [l for l in open('/proc/self/smaps_rollup') if 'AnonHuge' in l][0].split()[1]
    print(f"huge={huge} bs={bs>>10}K proc {cpu/gb:.3f} cpu-s/GB  machine {busy/gb:.3f} busy-s/GB  {gb/(t1-t0):.2f} GB/s anonhuge={ah}kB", flush=True)
total = int(float(sys.argv[1])*1e9)
for rep in range(int(sys.argv[2])):
    for bs in [int(x)<<20 for x in os.environ.get("BS","1 4").split()]:
        for huge in (False, True):
            run(huge, bs, total, '/work/runs/s8/dio.tmp')
