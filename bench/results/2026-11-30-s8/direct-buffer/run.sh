#!/bin/bash
# ringest-only A/B of the direct buffer's pages: base / THP / THP + 4 MiB buffer
cd /work/main
for round in ${ROUNDS:-1 2}; do
for v in ${VARIANTS:-base thp thp4}; do
  case $v in base) E="";; thp) E="RINGEST_HACK_THP=1";; thp4) E="RINGEST_HACK_THP=1 RINGEST_HACK_DBUF=4194304";; dbuf4) E="RINGEST_HACK_DBUF=4194304";; thp8) E="RINGEST_HACK_THP=1 RINGEST_HACK_DBUF=8388608";; thp2) E="RINGEST_HACK_THP=1 RINGEST_HACK_DBUF=2097152";; esac
  out=/work/runs/s8/thpab/$v-$round
  env $E target/release/bench compare --bin-dir /work/runs/s8/bin-thp --only ringest --pick mtls-large-8 --duration 8 --repeat 3 --out $out > $out.log 2>&1
  echo "$(date +%T) $v-$round $(grep -o 'ringest run [0-9]/3: [^,]*, [0-9.]* server[^,]*, [0-9.]* machine, [0-9.]* client' $out.log | sed 's/ msg\/s written//; s/ server CPU-µs\/msg//' | tr '\n' ' ')" >> /work/runs/s8/thpab.log
done; done
