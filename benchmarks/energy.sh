#!/usr/bin/env bash
# The energy-based family's benchmarks (issue 12), one section per argument, each at 1 thread:
#   bash benchmarks/energy.sh rbm-sklearn|rbm-complexity|rbm-mnist|toys|mnist|digits [OUT]
# OUT defaults to runs/energy; MNIST comes from $DEEPGEN_DATA (or ../shared/data).
set -euo pipefail
what=$1
out=${2:-runs/energy}
data=${DEEPGEN_DATA:-../shared/data}
dg=${DEEPGEN:-deepgen}
py=${PYTHON:-python}
export OMP_NUM_THREADS=1
mkdir -p "$out"
case $what in
rbm-sklearn)  # fit time against scikit-learn's BernoulliRBM, and both models' AIS test NLL
  $py benchmarks/rbm_sklearn.py --reps 5
  ;;
rbm-complexity)  # exact gradient O(2^N) against CD-k O(kBNp), measured
  $py benchmarks/rbm_complexity.py --out-png docs/images/rbm_complexity.png
  ;;
rbm-mnist)  # static binarised MNIST, 500 hidden units, CD-K (RBM_K, default 1) for RBM_STEPS updates of batch 100
  # RBM_ARGS: more `deepgen train` options (CD-25 uses "--lr-schedule cosine")
  k=${RBM_K:-1}
  run="$out/rbm-cd$k-mnist"
  $dg train rbm --data binarized-mnist --data-dir "$data" --threads 1 --no-progress --steps "${RBM_STEPS:-25000}" \
    --batch-size 100 --lr 0.05 --weight-decay 2e-4 --eval-every 5000 -o hidden=500 -o k="$k" -o momentum=0.5 \
    ${RBM_ARGS:-} --out "$run" --overwrite
  $dg eval "$run" --full -q  # AIS with Salakhutdinov & Murray's 14,500 distributions, 100 chains
  ;;
toys)  # 2-D toys, batch 256; the EBM's NLL through AIS (2,000 distributions) on all 10,000 test points
  for toy in ${TOYS:-moons 8gaussians checkerboard 2spirals}; do
    $dg compare --data "$toy" --models ebm,ncsn,rbm --steps "${TOY_STEPS:-5000}" --batch-size 256 --threads 1 -q \
      -o rbm.hidden=16 --out "$out/toys-$toy" --overwrite
    $dg eval "$out/toys-$toy/runs/ebm" --method ais --k 2000 -q --out "$out/toys-$toy/ebm-ais.json"
  done
  ;;
mnist)  # deep EBM (conv energy, 60 SGLD steps per update) and NCSN (the DDPM table's small U-Net) on MNIST:
  # FID/KID/precision/recall with deepgen-mnist features on MNIST_SAMPLES samples each
  $dg compare --data mnist --data-dir "$data" --models ebm,ncsn --steps "${MNIST_STEPS:-3000}" --batch-size 64 \
    --threads 1 -q -o ncsn.channels=16,32 -o ncsn.layers_per_block=1 --n-samples "${MNIST_SAMPLES:-500}" \
    --out "$out/mnist" --overwrite
  ;;
digits)
  $dg compare --data digits --models ebm,ncsn --steps 1500 --threads 1 --out "$out/digits" --overwrite
  ;;
*) echo "unknown section $what" >&2; exit 2 ;;
esac
