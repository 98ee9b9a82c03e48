#!/bin/bash
cd /work/main
for round in 2 3; do
for v in main8 single; do
  out=/work/runs/s8/fairab/$v-$round
  [ -e $out ] && out=$out-b
  target/release/bench compare --bin-dir /work/runs/s8/bin-$v --only ringest --pick mtls-large-8 --duration 8 --repeat 3 --out $out > $out.log 2>&1
  echo "$(date +%T) $v-$round $(grep -o 'ringest run [0-9]/3: [^,]*, [0-9.]* server[^,]*, [0-9.]* machine, [0-9.]* client' $out.log | sed 's/ msg\/s written//; s/ server CPU-µs\/msg//' | tr '\n' ' ')" >> /work/runs/s8/singleab.log
  grep -h 'messages per connection' -A3 $out/results.md | grep 'ringest' | cut -d'|' -f6,7 >> /work/runs/s8/singleab.log
done; done
for round in 1 2; do
for v in main8 single; do
  out=/work/runs/s8/lat80/$v-$round
  target/release/bench latency --bin-dir /work/runs/s8/bin-$v --max-rate 5502907 --points 80 --duration 10 --out $out > $out.log 2>&1
  echo "$(date +%T) lat80 $v-$round $(grep -E 'ringest at 80' $out.log | cut -c1-300)" >> /work/runs/s8/singleab.log
done; done
