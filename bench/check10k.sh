#!/usr/bin/env bash
# Parse + check of a generated 10,000-line program with the release flowc (the same program
# as the criterion bench `cargo bench -p flow-compiler`), timed whole-process by hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/check10k
mkdir -p "$dir"
printf 'id,user_id,amount,kind,country\n1,1,2.5,a,de\n' > "$dir/orders.csv"
cp "$dir/orders.csv" "$dir/users.csv"
python3 - "$dir/program.flow" <<'PY'
import sys
lines = ['let users = load "users.csv"', 'let orders = load "orders.csv"']
previous, i = "orders", 0
while len(lines) < 10_000:
    name = f"t{i}"
    lines += [f"let {name} = {previous}", f'  | filter amount > {i} and kind != "x{i}"',
              f"  | derive amount = amount * 1.01 + {i}, tag = lower(kind)",
              "  | select id, user_id, amount, kind", f"  | take {1000 + i}"]
    i += 1
    if i % 5 == 0:
        lines.append(f"show {name} | join users on user_id | group country {{ n = count(), s = sum({name}.amount) }}")
        previous = "orders"
    else:
        previous = name
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
wc -l "$dir/program.flow"
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine
cargo build --release -q -p flow-cli
hyperfine -N --warmup 2 --runs "${RUNS:-10}" "target/release/flowc check $dir/program.flow"
