#!/usr/bin/env bash
# The GAN family's benchmarks (issue 13), one section per argument, each at 1 thread:
#   bash benchmarks/gan.sh modes|energy|mnist-losses|cgan|infogan|cyclegan [OUT]
# OUT defaults to runs/gan; MNIST comes from $DEEPGEN_DATA (or ../shared/data). GAN_STEPS sets the
# MNIST runs' updates (default 4000, batch 64); LOSSES the losses of mnist-losses; GAN_OPTS more
# `deepgen train` options for every MNIST run (e.g. smaller networks: "-o g_channels=64,32 -o d_channels=32,64").
set -euo pipefail
what=$1
out=${2:-runs/gan}
data=${DEEPGEN_DATA:-../shared/data}
dg=${DEEPGEN:-deepgen}
py=${PYTHON:-python}
steps=${GAN_STEPS:-4000}
export OMP_NUM_THREADS=1
mkdir -p "$out"
train() {  # train MODEL NAME [options...]: a run on MNIST, then deepgen eval (FID etc., deepgen-mnist features)
  local model=$1 name=$2
  shift 2
  $dg train "$model" --data mnist --data-dir "$data" --threads 1 --no-progress --steps "$steps" --batch-size 64 \
    --eval-every 0 ${GAN_OPTS:-} "$@" --out "$out/$name" --overwrite
  $dg eval "$out/$name" -q
}
case $what in
modes)  # the mode-collapse study: every loss/stabiliser on 8gaussians and 25gaussians, 5 seeds
  $py benchmarks/gan_modes.py --out "$out/modes"
  ;;
energy)  # the discriminator's landscape with and without a Lipschitz constraint
  $py benchmarks/gan_energy.py --out docs/images/gan_energy.png
  ;;
mnist-losses)  # DCGAN on MNIST with each loss (WGAN-GP: 5 critic steps per generator step)
  for loss in ${LOSSES:-nonsaturating minimax lsgan hinge wgan-gp}; do
    extra=()
    [[ $loss == wgan-gp ]] && extra=(-o d_steps=5)
    [[ $loss == hinge ]] && extra=(-o spectral_norm=true)
    train dcgan "dcgan-$loss" -o loss="$loss" "${extra[@]}"
  done
  ;;
cgan)  # conditional DCGAN (auxiliary classifier on reals, the default): class accuracy of its samples by deepgen-mnist
  train cgan cgan-mnist
  ;;
infogan)  # InfoGAN (10 categories, 2 continuous codes): code/class agreement after matching
  train infogan infogan-mnist
  $py benchmarks/infogan_codes.py "$out/infogan-mnist" --out "$out/infogan-mnist/codes"
  ;;
cyclegan)  # sklearn digits (upsampled) <-> MNIST: label agreement in both directions
  $dg train cyclegan --data domains:digits-mnist --data-dir "$data" --threads 1 --no-progress --steps "$steps" \
    --batch-size 16 --eval-every 0 ${GAN_OPTS:-} --out "$out/cyclegan-digits-mnist" --overwrite
  $dg eval "$out/cyclegan-digits-mnist" -q --n-samples 2000
  ;;
*) echo "unknown section $what" >&2; exit 2 ;;
esac
