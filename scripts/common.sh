# Shell helpers of scripts/reproduce_*.sh (sourced after ONLY is set: " RUN ... " or "  " for every run).
export TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
# wanted NAME: this run / baseline was asked for (or nothing was named)
wanted() { [ "$ONLY" = "  " ] || [[ "$ONLY" == *" $1 "* ]]; }
# q ARGS: python -m qrewrite ARGS, echoed first
q() { echo "+ python -m qrewrite $*"; python -m qrewrite "$@"; }
# logged LOG CMD...: CMD's output also into LOG, headed by the date and commit; files named relative to the
# repository (a warning's path to this checkout's qrewrite/ says nothing elsewhere)
logged() {
  local log=$1; shift; mkdir -p "$(dirname "$log")"
  { echo "# $(date -u +%FT%TZ) commit $(git -C "${REPO:-.}" rev-parse --short HEAD)"; "$@"; } 2>&1 | sed -u "s|$PWD/||g" | tee "$log"
}
# trained RUN: weights/RUN holds a finished run
trained() { [ -f "weights/$1/run.json" ] && grep -q '"complete"' "weights/$1/run.json"; }
