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
siren)  # SIREN vs ReLU vs ReLU + Fourier features on a 256 x 256 photo, same parameter count and steps
  $py benchmarks/siren_fit.py --size "${SIREN_SIZE:-256}" --steps "${SIREN_STEPS:-500}" --out docs/images/siren_fit
  ;;
nerf)  # the synthetic scene (32 x 32 views, 25 train / 5 held out): PSNR on the held-out views
  $dg train nerf --data scene:spheres --threads 1 --no-progress --steps "${NERF_STEPS:-3000}" --batch-size 1024 \
    --eval-every 0 --out "$out/nerf-spheres" --overwrite
  $dg eval "$out/nerf-spheres" -q
  $dg sample "$out/nerf-spheres" -n 8 -s size=64 --out "$out/nerf-spheres/views.png"
  ;;
gon)  # GON and variational GON on MNIST: reconstruction, ELBO in bits/dim, samples at 28x28 and 56x56
  for m in gon vgon; do
    $dg train $m --data mnist --data-dir "$data" --threads 1 --no-progress --steps "${GON_STEPS:-2000}" \
      --batch-size 64 --eval-every 0 --out "$out/$m-mnist" --overwrite
    $dg eval "$out/$m-mnist" -q
    $dg sample "$out/$m-mnist" -n 64 -s resolution=56,56 --out "$out/$m-mnist/samples56.png"
  done
  ;;
*) echo "unknown section $what" >&2; exit 2 ;;
esac
