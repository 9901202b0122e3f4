#!/usr/bin/env bash
# Runs pyembed under AddressSanitizer + UndefinedBehaviorSanitizer, and a smaller set of scripts
# under valgrind memcheck. The normal build (build/Release) is never touched: each variant of the
# addon is built by node-gyp in its own folder under build/sanitize/, and the tests run from a
# private copy of the package there (the files git tracks, dist/ and build/test/ copied;
# node_modules/ linked), so `import 'pyembed'` in the tests and their child processes loads that
# variant.
#
#   scripts/sanitize.sh            # both: ASan+UBSan over the test suite, then valgrind
#   scripts/sanitize.sh asan       # ASan+UBSan only (TESTS="file ..." picks test files of build/test)
#   scripts/sanitize.sh valgrind   # valgrind only (VALGRIND_SCRIPTS="..." picks scripts;
#                                  # VALGRIND_ORIGINS=1 adds --track-origins=yes, to check that
#                                  # suppressed reports come from where their reason says)
#
# Reports go to build/sanitize/reports/; the summary is printed and written to
# build/sanitize/summary.md (scripts/SANITIZERS.md records the last run: copy it there). Exit
# status: 0 when no report involves pyembed's code (native/*.cc, *.h), 1 otherwise, 2 when the
# tools or a build are missing. Reports from CPython, V8 or Node alone are suppressed by the files
# in scripts/sanitizers/ (each entry with its reason), never by matching pyembed's code.
#
# Needs gcc with libasan and libubsan (Debian: gcc, build-essential) and, for the valgrind part,
# valgrind (Debian: apt-get install valgrind); none of these are needed by npm test.
#
# Node itself is not built with ASan: the ASan runtime is preloaded (LD_PRELOAD) into every node
# process (children inherit it). Leak detection is off (detect_leaks=0): Node, V8 and CPython keep
# process-lifetime allocations on purpose, and pyembed's own reference handling is checked by the
# tests instead (object counts back to baseline). CPython runs with PYTHONMALLOC=malloc so that
# Python objects live in ASan-checked memory.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/build/sanitize
SUPP=$ROOT/scripts/sanitizers
MODE=${1:-all}

log() { printf '\n== %s\n' "$*"; }

node_gyp() {
  local gyp
  if command -v node-gyp >/dev/null 2>&1; then
    gyp=(node-gyp)
  else
    local npmdir
    npmdir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
    gyp=(node "$npmdir/node_modules/node-gyp/bin/node-gyp.js")
  fi
  local nodedir
  nodedir=$(npm config get nodedir 2>/dev/null || true)
  if [[ -n "$nodedir" && "$nodedir" != undefined && "$nodedir" != null ]]; then
    "${gyp[@]}" "$@" --nodedir="$nodedir"
  else
    "${gyp[@]}" "$@"
  fi
}

# build_variant NAME "cflags" "ldflags": the addon with extra flags, in build/sanitize/NAME-gyp,
# and a private package copy in build/sanitize/NAME-pkg that loads it.
build_variant() {
  local name=$1 cflags=$2 ldflags=$3
  local gypdir=$WORK/$name-gyp pkg=$WORK/$name-pkg
  log "building the $name addon ($cflags)"
  mkdir -p "$gypdir"
  ln -sfn "$ROOT/native" "$gypdir/native"
  node - "$ROOT/binding.gyp" "$gypdir/binding.gyp" "$ROOT" "$cflags" "$ldflags" <<'EOF'
const fs = require('fs');
const [from, to, root, cflags, ldflags] = process.argv.slice(2);
const gyp = JSON.parse(fs.readFileSync(from, 'utf8'));
for (const t of gyp.targets) {
  t.cflags_cc = (t.cflags_cc || []).filter((f) => !/^-O/.test(f)).concat(cflags.split(' '));
  t.cflags = (t.cflags || []).concat(cflags.split(' '));
  t.ldflags = (t.ldflags || []).concat(ldflags.split(' ').filter(Boolean));
}
fs.writeFileSync(to, JSON.stringify(gyp, null, 2));
EOF
  (cd "$gypdir" && node_gyp rebuild --jobs=2 >"$gypdir/build.log" 2>&1) || { tail -30 "$gypdir/build.log"; exit 2; }
  rm -rf "$pkg"
  mkdir -p "$pkg/build/Release"
  # The package's files as git sees them (tests read README.md, tsconfig.json, test/types, ...),
  # plus the built TypeScript and tests; node_modules is shared.
  git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$pkg"
  cp -r "$ROOT/dist" "$pkg/dist"
  cp -r "$ROOT/build/test" "$pkg/build/test"
  ln -s "$ROOT/node_modules" "$pkg/node_modules"
  cp "$gypdir/build/Release/pyembed.node" "$pkg/build/Release/pyembed.node"
}

# The TypeScript and the tests are built once, normally.
prepare() {
  log "building TypeScript and tests"
  npm run --silent build
  npm run --silent build:test
  mkdir -p "$WORK"
}

# Reports -> one line each: "file#n<TAB>first pyembed frame of the report's own stack, or -<TAB>
# kind". A report counts as pyembed's when its error stack (not the allocation or thread-creation
# stacks after it) has a frame in native/*.cc, *.h or pyembed.node: that errs on the side of
# blaming pyembed (an error in CPython reached through a pyembed call counts too).
PYEMBED_FRAME='(native/[a-z_]+\.(cc|h):[0-9]+|pyembed\.node)'

# ASan and UBSan logs (log_path: one file per process, maybe several reports in one).
summarize_sanitizer_reports() {
  local dir=$1
  shopt -s nullglob
  for f in "$dir"/*; do
    awk -v file="$(basename "$f")" -v re="$PYEMBED_FRAME" '
      function flush() { if (kind != "") print file "#" (++n) "\t" frame "\t" kind; kind = "" }
      /==[0-9]+==ERROR: (AddressSanitizer|LeakSanitizer)/ {
        flush(); kind = $0; sub(/.*==ERROR: /, "", kind); frame = "-"; stack = 1; next }
      / runtime error: / {
        flush(); kind = $0; sub(/.* runtime error: /, "runtime error: ", kind); frame = "-"; stack = 1
        loc = $0; sub(/: runtime error: .*/, "", loc)
        if (match(loc, re)) frame = loc
        next }
      stack && /^ *#[0-9]+ / { if (frame == "-" && match($0, re)) { frame = $0; sub(/^ *#[0-9]+ 0x[0-9a-f]+ in /, "", frame) }; next }
      stack && !/^ *#[0-9]+ / { stack = 0 }
      END { flush() }
    ' "$f"
  done
}

# valgrind logs: one report per error context, up to the first ERROR SUMMARY (-v lists them all
# again after it).
summarize_valgrind_reports() {
  local dir=$1
  shopt -s nullglob
  for f in "$dir"/*.log; do
    awk -v file="$(basename "$f")" -v re="$PYEMBED_FRAME" '
      /^==[0-9]+== ERROR SUMMARY/ { exit }
      /^==[0-9]+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap|Argument .* of function|Process terminating)/ {
        kind = $0; sub(/^==[0-9]+== /, "", kind); frame = "-"; inblock = 1; next }
      inblock && /^==[0-9]+== *$/ { print file "#" (++n) "\t" frame "\t" kind; inblock = 0; next }
      inblock && frame == "-" && /^==[0-9]+== +(at|by) / && match($0, re) { frame = $0; sub(/^==[0-9]+== +(at|by) 0x[0-9A-F]+: /, "", frame) }
    ' "$f"
  done
}

run_asan() {
  build_variant asan "-fsanitize=address,undefined -fno-sanitize=vptr -fno-omit-frame-pointer -g -O1" \
    "-fsanitize=address,undefined"
  local reports=$WORK/reports/asan
  rm -rf "$reports" && mkdir -p "$reports"
  local runtime
  runtime=$(gcc -print-file-name=libasan.so)
  local tests=${TESTS:-}
  local files=()
  if [[ -n "$tests" ]]; then
    for t in $tests; do files+=("build/test/$t"); done
  else
    files=(build/test/)
  fi
  log "ASan+UBSan: node --test ${files[*]} (from $WORK/asan-pkg)"
  local start=$SECONDS status=0
  (
    cd "$WORK/asan-pkg"
    LD_PRELOAD="$runtime" \
    ASAN_OPTIONS="detect_leaks=0:log_path=$reports/asan:allow_user_segv_handler=0:handle_abort=1:halt_on_error=0:detect_odr_violation=0:allocator_may_return_null=1:suppressions=$SUPP/asan.supp" \
    UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/ubsan:suppressions=$SUPP/ubsan.supp" \
    PYTHONMALLOC=malloc \
    node --test --test-concurrency=2 "${files[@]}"
  ) >"$WORK/asan-tests.log" 2>&1 || status=$?
  ASAN_SECONDS=$((SECONDS - start))
  ASAN_TESTS=$(grep -E '^# (tests|pass|fail|todo|skipped|cancelled) ' "$WORK/asan-tests.log" | tr '\n' ' ' || true)
  ASAN_STATUS=$status
  log "ASan+UBSan tests: $ASAN_TESTS (exit $status, ${ASAN_SECONDS}s)"
  summarize_sanitizer_reports "$reports" >"$WORK/asan-reports.tsv"
}

# Scripts for valgrind: short, each exercising one area, printing OK at the end.
VALGRIND_DIR=$ROOT/scripts/sanitizers/valgrind
run_valgrind() {
  if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind is not installed (Debian: sudo apt-get install -y valgrind)" >&2
    exit 2
  fi
  build_variant debug "-g -O1 -fno-omit-frame-pointer" ""
  local reports=$WORK/reports/valgrind
  rm -rf "$reports" && mkdir -p "$reports"
  local scripts=${VALGRIND_SCRIPTS:-$(cd "$VALGRIND_DIR" && ls *.mjs)}
  local origins=no
  [[ -n ${VALGRIND_ORIGINS:-} ]] && origins=yes
  VALGRIND_RESULTS=()
  for s in $scripts; do
    log "valgrind memcheck: $s"
    local start=$SECONDS status=0
    cp "$VALGRIND_DIR/$s" "$WORK/debug-pkg/$s"
    (
      cd "$WORK/debug-pkg"
      PYTHONMALLOC=malloc valgrind --tool=memcheck --error-exitcode=99 --trace-children=no \
        --suppressions="$SUPP/valgrind.supp" --num-callers=40 --track-origins="$origins" -v --fullpath-after= \
        --log-file="$reports/${s%.mjs}.%p.log" \
        node --jitless --single-threaded-gc "$s"
    ) >"$reports/${s%.mjs}.out" 2>&1 || status=$?
    local errors
    errors=$(grep -h 'ERROR SUMMARY' "$reports/${s%.mjs}".*.log | sed -E 's/.*ERROR SUMMARY: ([0-9]+) errors.*/\1/' | paste -sd+ | bc)
    local ok=no
    grep -q '^OK' "$reports/${s%.mjs}.out" && ok=yes
    VALGRIND_RESULTS+=("$s|$errors|$ok|$status|$((SECONDS - start))")
    echo "errors $errors, script finished: $ok, exit $status, $((SECONDS - start)) s"
  done
  summarize_valgrind_reports "$reports" >"$WORK/valgrind-reports.tsv"
}

write_summary() {
  local out=$WORK/summary.md
  {
    echo "## Last run: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD)$( [[ -n $(git status --porcelain) ]] && echo ' (uncommitted changes)')"
    echo
    echo "- Command: \`scripts/sanitize.sh $MODE\`$( [[ -n ${TESTS:-} ]] && echo " with TESTS=\"$TESTS\"")"
    echo "- Toolchain: $(gcc --version | head -1), $(valgrind --version 2>/dev/null || echo 'no valgrind'), node $(node --version), $(python3 --version)"
    if [[ -n ${ASAN_TESTS:-} ]]; then
      echo
      echo "### ASan + UBSan"
      echo
      echo "- Ran: the test suite (\`node --test --test-concurrency=2 build/test/\`${TESTS:+, files: $TESTS}) with the ASan+UBSan addon, ${ASAN_SECONDS}s"
      echo "- Test results: $ASAN_TESTS(runner exit $ASAN_STATUS)"
      echo "- Report files: $(ls "$WORK/reports/asan" | wc -l) (processes that wrote a report)"
      classify "$WORK/asan-reports.tsv" "$WORK/reports/asan"
    fi
    if [[ ${#VALGRIND_RESULTS[@]} -gt 0 ]]; then
      echo
      echo "### valgrind memcheck (node --jitless, -O1 -g addon)"
      echo
      echo "| Script | Errors | Finished | Exit |"
      echo "|---|---:|---|---:|"
      for r in "${VALGRIND_RESULTS[@]}"; do
        IFS='|' read -r s e ok st secs <<<"$r"
        echo "| $s | $e | $ok | $st |"
      done
      classify "$WORK/valgrind-reports.tsv" "$WORK/reports/valgrind"
      echo "- Suppressed (valgrind.supp entry: errors):"
      valgrind_suppressions_used | while read -r count name; do echo "  - $name: $count"; done
    fi
  } >"$out"
  cat "$out"
}

UNEXPECTED=0
# classify TSV REPORTDIR: every report with a frame in pyembed's code counts (none is excused).
classify() {
  local tsv=$1 dir=$2
  local total pyembed
  total=$(wc -l <"$tsv")
  pyembed=$(awk -F'\t' '$2 != "-"' "$tsv" | wc -l)
  UNEXPECTED=$((UNEXPECTED + pyembed))
  echo "- Reports: $total; with a pyembed frame: $pyembed; from CPython/V8/Node only: $((total - pyembed))"
  if [[ $pyembed -gt 0 ]]; then
    echo "- pyembed reports (report: kind, first pyembed frame):"
    while IFS=$'\t' read -r file frame kind; do
      [[ "$frame" == "-" ]] && continue
      echo "  - $file: ${kind:0:80} at ${frame:0:160}"
    done <"$tsv"
  fi
  if [[ $((total - pyembed)) -gt 0 ]]; then
    echo "- Reports without a pyembed frame, not suppressed (report: kind):"
    awk -F'\t' '$2 == "-" { print "  - " $1 ": " substr($3, 1, 100) }' "$tsv"
  fi
}

# Suppressions valgrind used (from its -v output): "count name" per line, summed over the logs.
valgrind_suppressions_used() {
  cat "$WORK/reports/valgrind/"*.log 2>/dev/null |
    sed -nE 's/^--[0-9]+-- used_suppression: +([0-9]+) ([^ ]+) .*/\2 \1/p' |
    awk '{n[$1] += $2} END {for (k in n) print n[k], k}' | sort -rn
}

prepare
case "$MODE" in
  asan) run_asan ;;
  valgrind) run_valgrind ;;
  all) run_asan; run_valgrind ;;
  *) echo "usage: $0 [asan|valgrind|all]" >&2; exit 2 ;;
esac
VALGRIND_RESULTS=("${VALGRIND_RESULTS[@]:-}")
[[ -z "${VALGRIND_RESULTS[0]}" ]] && VALGRIND_RESULTS=()
write_summary
if [[ $UNEXPECTED -gt 0 ]]; then
  echo "$UNEXPECTED report(s) in pyembed's code" >&2
  exit 1
fi
