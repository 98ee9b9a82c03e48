#!/bin/bash
cd /work/main
for round in 1 2; do for q in 64 8; do
  timeout 600 /tmp/prof/bench-$q compare --scenarios bench/scenarios/kafka.toml --pick kafka-mtls-large-8 --only ringest --duration 10 --repeat 2 --states fresh --fresh-wait 1 --aes-seconds 0 --kafka-warm-up 15 --bin-dir /work/main/target/release --out /tmp/prof/q$q-r$round > /tmp/prof/q$q-r$round.log 2>&1
  grep "run [0-9]/" /tmp/prof/q$q-r$round.log | sed "s/^/q=$q r=$round /" >> /tmp/prof/qexp.out
done; done
echo END >> /tmp/prof/qexp.out
