#!/usr/bin/env bash
# What a dependency on leakwatch costs a program that only counts: a hello-world binary with
# `leakwatch = { path = ... }` (default features, or those given), built from a clean target
# directory outside the repository.
#
#   scripts/dependency-cost.sh [REV] [CARGO FEATURE ARGS...]
#   scripts/dependency-cost.sh HEAD                              # default features
#   scripts/dependency-cost.sh HEAD --features leakwatch/webhook
#
# Prints the number of distinct packages in the normal dependency tree (the hello-world and
# leakwatch's own crates included) and the wall and CPU time of a clean debug and release
# build. The checkout at REV (default HEAD) is exported with `git archive`, so uncommitted
# changes are not measured. Build times depend on the machine and its load: compare
# revisions in one run, one after the other.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-HEAD}
shift || true
work=$(mktemp -d "${TMPDIR:-/tmp}/leakwatch-cost.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/hello/src"
git -C "$repo" archive "$rev" | tar -x -C "$work/src"
cat > "$work/hello/Cargo.toml" <<EOF
[package]
name = "hello"
version = "0.1.0"
edition = "2024"

[dependencies]
leakwatch = { path = "../src/leakwatch" }

[workspace]
EOF
cat > "$work/hello/src/main.rs" <<'EOF'
fn main() {
    let t = leakwatch::Token::new("hello");
    println!("{}", leakwatch::snapshot().live("hello"));
    drop(t);
}
EOF
# The same dependency versions as the repository's lock file.
cp "$work/src/Cargo.lock" "$work/hello/Cargo.lock"
cd "$work/hello"
n=$(cargo tree -e normal --prefix none --no-dedupe "$@" | sort -u | wc -l)
echo "$rev $*: $n packages (cargo tree -e normal --prefix none --no-dedupe | sort -u | wc -l)"
for profile in dev release; do
  export CARGO_TARGET_DIR="$work/target-$profile"
  /usr/bin/time -o "$work/time" -f "%e s wall, %U s user CPU" \
    cargo build -q --profile "$profile" "$@" >/dev/null 2>&1
  echo "$rev $*: clean $profile build: $(cat "$work/time") (load $(cut -d' ' -f1 /proc/loadavg))"
done
