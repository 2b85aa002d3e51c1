# Sourced by benchmarks: writes the tests' million facts over a thousand keys, and the keys'
# names, to $out/facts.csv and $out/dims.csv unless they are there.
if [ ! -f "$out/facts.csv" ]; then
  awk 'BEGIN { print "id,key,value"; for (i = 0; i < 1000000; i++) printf "%d,%d,%d\n", i, (i * 7919) % 1000, (i * 31) % 10007 }' > "$out/facts.csv"
  awk 'BEGIN { print "key,name"; for (k = 0; k < 1000; k++) printf "%d,name%d\n", k, k % 37 }' > "$out/dims.csv"
fi
