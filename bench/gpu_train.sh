#!/usr/bin/env bash
# Train a paper-size LBAE and its realism decoder on one CUDA GPU, in resumable chunks.
#
#   bench/gpu_train.sh PRESET DATA RUN [FIDELITY_MINUTES] [REALISM_MINUTES] [WIDTH]
#
# Each call runs one chunk of at most $CHUNK_MINUTES (default 9) of whichever stage is not
# finished, checkpoints, and exits; call it again with the same arguments until it prints
# "all stages done". Stage 1 (RUN/fidelity): width WIDTH (default 64, the paper's), batch 512,
# bf16 autocast, channels_last, torch.compile; its epoch count is chosen after the second epoch
# so that the stage fits FIDELITY_MINUTES (default 40) of this GPU. Stage 2 (RUN/realism): the
# realism decoder on the frozen encoder of stage 1's best epoch, REALISM_MINUTES (default 15), with
# the recipe of `cifar10-w64-r` (the best realism decoder here: a batch-norm discriminator of width
# 32, a fixed weight of 0.05, an R1 penalty, batch 64); REALISM (options) and REALISM_BATCH change
# it, e.g. REALISM="--adv-weight 0.02 --fixed-weight --disc-width 32 --disc-norm batch --r1 1
# --disc-augment translation" for CelebA's 9,000 faces (`celeba-r3`'s, bench/TRAINING.md).
# Then, on any machine: lbaecodec export RUN/fidelity --realism RUN/realism --preset PRESET ...
#
# Environment: CHUNK_MINUTES, DEVICE (default cuda; cpu for a smoke run), LBAECODEC (the
# command, default "python3 -m lbaecodec"), EXTRA (more train options for both stages, e.g.
# "--limit 2000"), FIDELITY (more options for stage 1 only, e.g. "--rate 0.03": fewer bits),
# REALISM, REALISM_BATCH (above).
set -euo pipefail
preset=$1 data=$2 run=$3 fidelity_minutes=${4:-40} realism_minutes=${5:-15} width=${6:-64}
chunk=${CHUNK_MINUTES:-9} device=${DEVICE:-cuda} lbae=${LBAECODEC:-python3 -m lbaecodec}
gpu_flags=(--bf16 --compile)
realism=${REALISM:---adv-weight 0.05 --fixed-weight --disc-width 32 --disc-norm batch --r1 1}
[ "$device" = cpu ] && gpu_flags=()

# finished RUN: its last checkpoint has completed its planned epochs
finished() {
  python3 - "$1" <<'EOF'
import json, sys
from pathlib import Path
p = Path(sys.argv[1]) / "last.json"
if not p.is_file():
    sys.exit(1)
meta = json.loads(p.read_text())
sys.exit(0 if meta["recipe"]["epochs"] and meta["progress"]["epoch"] >= meta["recipe"]["epochs"] else 1)
EOF
}

common=(--preset "$preset" --data-dir "$data" --device "$device" "${gpu_flags[@]}" --width "$width"
        --max-minutes "$chunk" --epochs 0 --resume --no-export ${EXTRA:-})
if ! finished "$run/fidelity"; then
  $lbae train "${common[@]}" --out "$run/fidelity" --batch 512 --budget-minutes "$fidelity_minutes" ${FIDELITY:-}
elif ! finished "$run/realism"; then
  $lbae train "${common[@]}" --out "$run/realism" --stage realism --init-from "$run/fidelity" \
    --batch "${REALISM_BATCH:-64}" $realism --budget-minutes "$realism_minutes"
else
  echo "all stages done: lbaecodec export $run/fidelity --realism $run/realism --preset $preset ..."
fi
