#!/usr/bin/env bash
# The implicit networks' benchmarks (issue 14), one section per argument, each at 1 thread:
#   bash benchmarks/implicit.sh siren|nerf|gon [OUT]
# OUT defaults to runs/implicit; MNIST comes from $DEEPGEN_DATA (or ../shared/data).
set -euo pipefail
what=$1
out=${2:-runs/implicit}
data=${DEEPGEN_DATA:-../shared/data}
dg=${DEEPGEN:-deepgen}
py=${PYTHON:-python}
export OMP_NUM_THREADS=1
mkdir -p "$out"
case $what in
siren)  # SIREN vs ReLU vs ReLU + Fourier features on a 256 x 256 photo crop, same parameter count and steps
  $py benchmarks/siren_fit.py --size 256 --crop 256 --layers 4 --steps "${SIREN_STEPS:-700}" --every 50 \
    --fourier-scales "${SIREN_SIGMAS:-2.5}" --out "$out/siren_fit"
  ;;
nerf)  # the synthetic scene (32 x 32 views, 25 train / 5 held out): PSNR on the held-out views
  $dg train nerf --data scene:spheres --threads 1 --no-progress --steps "${NERF_STEPS:-700}" --batch-size 512 \
    --eval-every 0 --out "$out/nerf-spheres" --overwrite   # writes views.png: novel views beside the truth
  $dg eval "$out/nerf-spheres" --out "$out/nerf-spheres/eval.json"
  $dg sample "$out/nerf-spheres" -n 8 -s size=64 --out "$out/nerf-spheres/views64.png"
  ;;
gon)  # GON, the autoencoder with its decoder, and VGON on MNIST: reconstruction, ELBO in bits/dim, samples 28/56 px
  $py benchmarks/gon_mnist.py --data-dir "$data" --steps "${GON_STEPS:-2000}" ${GON_ARGS:-} --out "$out/gon"
  ;;
*) echo "unknown section $what" >&2; exit 2 ;;
esac
