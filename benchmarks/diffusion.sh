#!/usr/bin/env bash
# The diffusion family's benchmarks (issue 11), one section per argument, each at 1 thread:
#   bash benchmarks/diffusion.sh toys|mnist|mnist-steps|mnist-nll [OUT]
# OUT defaults to runs/diffusion; MNIST comes from $DEEPGEN_DATA (or ../shared/data).
# The U-Net speed race against diffusers is benchmarks/unet_speed.py.
set -euo pipefail
what=$1
out=${2:-runs/diffusion}
data=${DEEPGEN_DATA:-../shared/data}
dg=${DEEPGEN:-deepgen}
py=${PYTHON:-python}
export OMP_NUM_THREADS=1
mkdir -p "$out"
case $what in
toys)  # the flows' protocol (docs 12.1): 5,000 steps, batch 256; then the ODE NLL on all 10,000 test points
  for toy in ${TOYS:-moons 8gaussians checkerboard 2spirals}; do
    $dg compare --data "$toy" --models ddpm,score-sde --steps 5000 --batch-size 256 --threads 1 -q \
      --out "$out/toys-$toy" --overwrite
    $dg eval "$out/toys-$toy/runs/ddpm" --method ode --full -q --out "$out/toys-$toy/ddpm-ode.json"
    $dg eval "$out/toys-$toy/runs/score-sde" --full -q --out "$out/toys-$toy/score-sde-ode.json"
  done
  ;;
mnist)  # a small U-Net (16, 32 channels, one block per level; 164k parameters), T = 1000, linear schedule
  printf '[train]\neval_examples = 200\n' > "$out/ddpm-mnist.toml"
  $dg train ddpm --data mnist --data-dir "$data" --threads 1 --no-progress --steps "${DDPM_STEPS:-3500}" \
    --batch-size 128 --lr 5e-4 --warmup-steps 200 --eval-every 1000 --ckpt-every 500 --log-every 100 \
    -o channels=16,32 -o layers_per_block=1 --config "$out/ddpm-mnist.toml" --out "$out/ddpm-mnist" --overwrite
  ;;
mnist-steps)  # FID/KID against sampling steps (DDIM paper's table), 500 samples per row
  $py benchmarks/diffusion_steps.py "$out/ddpm-mnist" --data-dir "$data" --n "${N_SAMPLES:-500}" --threads 1
  ;;
mnist-nll)  # the bound (all T terms) and the probability-flow ODE (Hutchinson, 1 probe) on the same seeded
  # NLL_EXAMPLES test images (default 500, the model's budget; docs 14.3 used 100 for both)
  ex=${NLL_EXAMPLES:-500}
  $dg eval "$out/ddpm-mnist" --data-dir "$data" --examples "$ex" --n-samples 100 -s sampler=ddim -s steps=50 -q \
    --out "$out/ddpm-mnist/eval-bound-$ex.json"
  $dg eval "$out/ddpm-mnist" --data-dir "$data" --method ode --examples "$ex" --n-samples 100 \
    -s sampler=ddim -s steps=50 -q --out "$out/ddpm-mnist/eval-ode-$ex.json"
  ;;
*) echo "unknown section $what" >&2; exit 2 ;;
esac
