#!/bin/bash
# usage: perfab.sh BINDIR OUT  -- unpaced mtls-large-8 for 14 s, perf -a -g for 6 s in the middle; server/client CPU from /proc
B=$1; OUT=$2; P=/work/runs/s6/pki; mkdir -p $OUT; D=/work/runs/s7/data; mkdir -p $D; rm -f $D/out.log
port=39601; sport=39602
cat > $OUT/ringest.toml <<EOT
[[source]]
name = "bench"
listen = "127.0.0.1:$port"
transport = "tls"
framing = "octet-counted"
max_message_bytes = 65536
[source.tls]
cert_file = "$P/server.pem"
key_file = "$P/server.key"
ca_file = "$P/ca.pem"
peer_verify = "required-trusted"
[[destination]]
name = "out"
type = "file"
path = "$D/out.log"
format = "raw"
fsync = "never"
[stats]
listen = "127.0.0.1:$sport"
EOT
$B/ringest serve --config $OUT/ringest.toml > $OUT/ringest.out 2>&1 &
SP=$!
for i in $(seq 50); do curl -sf 127.0.0.1:$sport/metrics >/dev/null && break; sleep 0.1; done
timeout 60 $B/loadgen send --target 127.0.0.1:$port --ca $P/ca.pem --cert $P/client.pem --key $P/client.key --tls-version 1.3 --cipher TLS13_AES_128_GCM_SHA256 --confirm-timeout 0 --connections 8 --threads 1 --size 300 --duration 14s --framing octet-counted --records-per-write 50 --json --quiet --close-timeout 60s > $OUT/loadgen.json 2> $OUT/loadgen.err &
LP=$!
sleep 4
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
m() { curl -s 127.0.0.1:$sport/metrics | awk '/^ringest_messages_written_total/{s+=$2} END{print s}'; }
LG=$(pgrep -P $LP loadgen); s0=$(cpu $SP); c0=$(cpu $LG); w0=$(m); t0=$(date +%s.%N)
grep -E '^softirq' /proc/stat > /dev/null
perf record -a -g -o $OUT/perf.data -- sleep 6 2> $OUT/perf.err
s1=$(cpu $SP); c1=$(cpu $LG); w1=$(m); t1=$(date +%s.%N)
wait $LP
kill -TERM $SP; wait $SP
python3 -c "
s=($s1-$s0)/100; c=($c1-$c0)/100; w=$w1-$w0; t=$t1-$t0
print(f'window {t:.2f}s written {w/t/1e6:.2f}M msg/s server {s/w*1e6:.3f} client {c/w*1e6:.3f} sum {(s+c)/w*1e6:.3f} CPU-us/msg')
" | tee $OUT/summary.txt
rm -f $D/out.log
