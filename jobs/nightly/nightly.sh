#!/usr/bin/env bash
# Nightly benchmarks: run the suites, render the report, publish it in a dated folder.
#
#   jobs/nightly/nightly.sh                 # quick suites (minutes), reports in ~/autophase-nightly
#   jobs/nightly/nightly.sh --full          # full-size suites
#   jobs/nightly/nightly.sh --root /data/autophase-nightly --suites "phasing inference"
#
# Layout of the root (one folder per day; yesterday's stays as today's comparison):
#
#   <root>/2026-11-25/results/*.json   the records of the day's run (+ logs/)
#   <root>/2026-11-25/index.html       the self-contained report (also report.md, figures/)
#   <root>/2026-11-25/report.json      the records used + regressions: tomorrow compares with it
#   <root>/2026-11-25/nightly.log      this script's output
#   <root>/latest -> 2026-11-25        switched only once the new report is complete
#
# Committed GPU records (benchmarks/results/*-gpu.json) join the report so that GPU rows
# appear even when tonight's machine has no GPU; a newer record of the same suite and
# device (tonight's, on a GPU node) replaces them.
#
# Environment (all optional): NIGHTLY_ROOT, NIGHTLY_MODE=quick|full, NIGHTLY_SUITES,
# NIGHTLY_DATE (YYYY-MM-DD, default today in UTC), NIGHTLY_SUITE_TIMEOUT (s per suite),
# NIGHTLY_EXTRA_RESULTS (more JSON for the report, e.g. an `autophase evaluate` results
# file), NIGHTLY_KEEP_DAYS (delete dated folders older than this; default: keep all),
# NIGHTLY_FAIL_ON_REGRESSION=1 (exit 3 on a regression), NIGHTLY_BENCH_DIR (tests),
# NIGHTLY_EVAL_N (held-out crystals for the shipped model's evaluation; 8 quick, 100
# full, 0 = skip),
# PYTHON (default: the repository's .venv/bin/python).
#
# Exit status: 0 report published; 1 a suite failed (report still published with what
# ran); 2 no report; 3 regressions with NIGHTLY_FAIL_ON_REGRESSION=1.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MODE=${NIGHTLY_MODE:-quick}
ROOT=${NIGHTLY_ROOT:-$HOME/autophase-nightly}   # outside the checkout: git status stays clean
SUITES=${NIGHTLY_SUITES:-}
DAY=${NIGHTLY_DATE:-$(date -u +%F)}
EXTRA=${NIGHTLY_EXTRA_RESULTS:-}
KEEP_DAYS=${NIGHTLY_KEEP_DAYS:-0}
PY=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --root) ROOT=$2; shift ;;
    --suites) SUITES=$2; shift ;;
    --date) DAY=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "nightly: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$MODE" in quick|full) ;; *) echo "nightly: NIGHTLY_MODE must be quick or full, got $MODE" >&2; exit 2 ;; esac
[[ "$DAY" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || { echo "nightly: date must be YYYY-MM-DD, got $DAY" >&2; exit 2; }
if [ "$MODE" = quick ]; then TIMEOUT=${NIGHTLY_SUITE_TIMEOUT:-900}; QUICK=--quick
else TIMEOUT=${NIGHTLY_SUITE_TIMEOUT:-10800}; QUICK=; fi

mkdir -p "$ROOT"
ROOT=$(cd "$ROOT" && pwd)
DIR=$ROOT/$DAY
mkdir -p "$DIR/results"

# One nightly at a time per root: a run that overlaps the next would time both.
exec 9>"$ROOT/.nightly.lock"
if ! flock -n 9; then
  echo "nightly: another run holds $ROOT/.nightly.lock; not starting" >&2
  exit 2
fi

exec > >(tee -a "$DIR/nightly.log") 2>&1
echo "nightly: $(date -u +%FT%TZ) mode=$MODE day=$DAY root=$ROOT repo=$REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
cd "$REPO"

# Benchmarks write only here (their records go into $DIR/results, not into the repository).
bench_args=(bench $SUITES --out "$DIR/results" --timeout "$TIMEOUT")
[ -n "$QUICK" ] && bench_args+=("$QUICK")
[ -n "${NIGHTLY_BENCH_DIR:-}" ] && bench_args+=(--bench-dir "$NIGHTLY_BENCH_DIR")
bench_rc=0
"$PY" -m autophase.cli "${bench_args[@]}" || bench_rc=$?

# The shipped model against the truth on crystals it never saw (seed 12): NN alone,
# NN + 50 ER and 600-iteration phasing (χ²/SSIM histograms, Fig. 2a–b of the paper).
if [ "$MODE" = quick ]; then N_EVAL=${NIGHTLY_EVAL_N:-8}; else N_EVAL=${NIGHTLY_EVAL_N:-100}; fi
eval_rc=0
if [ "$N_EVAL" -gt 0 ]; then
  echo "nightly: evaluating the shipped model on $N_EVAL held-out crystals"
  { [ -f "$DIR/heldout/manifest.json" ] || "$PY" -m autophase.cli simulate --n-crystals "$N_EVAL" \
        --out "$DIR/heldout" --seed 12 --no-progress; } &&
    "$PY" -m autophase.cli evaluate --data "$DIR/heldout" --out "$DIR/results/evaluate-cpu.json" \
        --n "$N_EVAL" --refine 50 --phasing 600 || eval_rc=$?
  # the external suite: the independent generator (truth) and the shared measured scans
  "$PY" -m autophase.cli evaluate --suite external --n "$N_EVAL" --seed 1 \
      --out "$DIR/results/external-cpu.json" || eval_rc=$?
  [ $eval_rc -ne 0 ] && echo "nightly: evaluation failed (exit $eval_rc); the report goes on without it" >&2
fi

# Report inputs: tonight's records, committed GPU records, anything extra.
inputs=()
shopt -s nullglob
for f in "$DIR"/results/*.json; do inputs+=("$f"); done
bench_results=${NIGHTLY_BENCH_DIR:-$REPO/benchmarks}/results
for f in "$bench_results"/*-gpu.json; do inputs+=("$f"); done
for f in $EXTRA; do inputs+=("$f"); done
shopt -u nullglob
if [ ${#inputs[@]} -eq 0 ]; then
  echo "nightly: no benchmark record was produced; no report (see $DIR/results/logs/)" >&2
  exit 2
fi

report_args=(report "${inputs[@]}" -o "$DIR" --title "autophase nightly ($MODE) — $DAY")
[ "${NIGHTLY_FAIL_ON_REGRESSION:-0}" = 1 ] && report_args+=(--fail-on-regression)
report_rc=0
"$PY" -m autophase.cli "${report_args[@]}" || report_rc=$?
if [ $report_rc -ne 0 ] && [ $report_rc -ne 3 ]; then
  echo "nightly: report failed (exit $report_rc)" >&2
  exit 2
fi

# Check the page in a headless browser when there is one (a broken page is not published).
if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then
  if ! "$PY" - "$DIR/index.html" <<'PYEOF'
import sys
from autophase.report.browser import check_page
c = check_page(sys.argv[1])
for p in c.problems():
    print(f"nightly: page check: {p}", file=sys.stderr)
print(f"nightly: page check: {c.images_mark} images rendered, {'ok' if c.ok else 'PROBLEMS'}")
sys.exit(0 if c.ok else 1)
PYEOF
  then
    echo "nightly: the report did not render cleanly; 'latest' left as it was" >&2
    exit 2
  fi
fi

# Publish: switch 'latest' atomically (a relative link, so the root can move).
ln -sfn "$DAY" "$ROOT/.latest.tmp"
mv -Tf "$ROOT/.latest.tmp" "$ROOT/latest"
echo "nightly: published $ROOT/latest -> $DAY ($DIR/index.html)"

if [ "$KEEP_DAYS" -gt 0 ] 2>/dev/null; then
  cutoff=$(date -u -d "$DAY - $KEEP_DAYS days" +%F)
  for d in "$ROOT"/[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]; do
    name=$(basename "$d")
    if [[ "$name" < "$cutoff" ]]; then echo "nightly: removing $d (older than $KEEP_DAYS days)"; rm -rf -- "$d"; fi
  done
fi

[ $eval_rc -ne 0 ] && bench_rc=1
[ $bench_rc -ne 0 ] && { echo "nightly: some suites failed (exit $bench_rc); the report shows what ran"; exit 1; }
exit $report_rc
