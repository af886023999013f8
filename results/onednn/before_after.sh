# Sourced by the before -> after studies' run.sh (layer_choices, bit_casts,
# fused_inference/stem):
# `bench` and `sides`. The caller sets $out (the results folder), $before
# (a checkout of the commit before the change) and $here (this checkout).

# bench NAME SIDE ROUND COMMAND...: one JAX-only run (the config as it is) of
# SIDE's checkout, into $out/NAME-SIDE-rROUND.txt.
bench() {
  local name=$1 side=$2 round=$3 dir=$here
  shift 3
  [ "$side" = before ] && dir=$before
  (cd "$dir" && "$@" --json --skip_torch --loop_steps=0 --jax_variants=) \
    > "$out/$name-$side-r$round.txt"
  grep -E '^jax' "$out/$name-$side-r$round.txt" | sed "s/^/[$name $side r$round] /"
}
# The sides' order in round ROUND: reversed in the even rounds.
sides() { if [ $(($1 % 2)) = 0 ]; then echo after before; else echo before after; fi; }
