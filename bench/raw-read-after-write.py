"""Raw pattern of replication on one disk, without xregion: 16 "source" threads write 1 MiB files as
the blob store does (temp file with O_DIRECT, fsync, rename, directory fsync); 16 "destination"
threads each take a file the source just wrote, read it first with O_DIRECT (argument "reads") or
not ("noreads"), and write a copy. Prints files/s per side. Usage: raw-read-after-write.py DIR reads|noreads SECONDS
See bench/results/2026-12-08-session24-recent-blobs.md."""
import os, mmap, threading, time, sys, secrets, collections
root = sys.argv[1]; reads = sys.argv[2] == "reads"; secs = float(sys.argv[3])
for r in ("s", "d"):
    os.makedirs(f"{root}/{r}/tmp", exist_ok=True)
    for i in range(256): os.makedirs(f"{root}/{r}/{i:02x}", exist_ok=True)
buf = mmap.mmap(-1, 1 << 20); buf.write(os.urandom(1 << 20))
count = {"s": 0, "d": 0, "r": 0}; stop = time.time() + secs
recent = collections.deque(maxlen=1000); lock = threading.Lock()
def write(region):
    id = secrets.token_hex(16); base = f"{root}/{region}"; fan = f"{base}/{id[:2]}"
    path = f"{base}/tmp/{id}.tmp"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o644)
    os.write(fd, buf); os.fsync(fd); os.close(fd)
    os.rename(path, f"{fan}/{id}")
    d = os.open(fan, os.O_RDONLY); os.fsync(d); os.close(d)
    return f"{fan}/{id}"
def src():
    while time.time() < stop:
        p = write("s"); count["s"] += 1
        with lock: recent.append(p)
def dst():
    rb = mmap.mmap(-1, 1 << 20)
    while time.time() < stop:
        with lock: p = recent.popleft() if recent else None
        if p is None: time.sleep(0.001); continue
        if reads:
            fd = os.open(p, os.O_RDONLY | os.O_DIRECT); os.readv(fd, [rb]); os.close(fd); count["r"] += 1
        write("d"); count["d"] += 1
ts = [threading.Thread(target=src) for _ in range(16)] + [threading.Thread(target=dst) for _ in range(16)]
[t.start() for t in ts]; [t.join() for t in ts]
print("reads" if reads else "noreads", {k: round(v / secs) for k, v in count.items()})
