#!/bin/bash
B=${1:-/work/runs/s7/bin-main}; OUT=${2:-/work/runs/s7/hs}; P=/work/runs/s6/pki; mkdir -p $OUT; D=/work/runs/s7/data; mkdir -p $D
port=29781; sport=29782
cat > $OUT/ringest.toml <<EOT
[[source]]
name = "bench"
listen = "127.0.0.1:$port"
transport = "tls"
framing = "octet-counted"
[source.tls]
cert_file = "$P/server.pem"
key_file = "$P/server.key"
ca_file = "$P/ca.pem"
peer_verify = "required-trusted"
[[destination]]
name = "out"
type = "file"
path = "$D/hs.log"
format = "raw"
[stats]
listen = "127.0.0.1:$sport"
EOT
$B/ringest serve --config $OUT/ringest.toml > $OUT/ringest.out 2>&1 &
SP=$!
for i in $(seq 50); do curl -sf 127.0.0.1:$sport/metrics >/dev/null && break; sleep 0.1; done
timeout 60 $B/loadgen send --target 127.0.0.1:$port --ca $P/ca.pem --cert $P/client.pem --key $P/client.key --tls-version 1.3 --cipher TLS13_AES_128_GCM_SHA256 --handshake-only --connections 8 --threads 1 --duration 10s --json --quiet > $OUT/loadgen.json 2> $OUT/loadgen.err &
LP=$!
sleep 3
perf record -g -p $SP -o $OUT/perf.data -- sleep 5 2> $OUT/perf.err
wait $LP; kill -TERM $SP; wait $SP; rm -f $D/hs.log
head -c 400 $OUT/loadgen.json
