#!/usr/bin/env bash
# The hybrids' benchmarks, one section per argument, each at 1 thread:
#   bash benchmarks/hybrids.sh digits|mnist|absorbing-digits|absorbing-mnist [OUT]
# OUT defaults to runs/hybrids; MNIST comes from $DEEPGEN_DATA (or ../shared/data).
# Latent diffusion against the VAE it is built on, at the same latent size and steps per stage: the
# only difference is the prior over z (N(0, I) against a DDPM over the codes). Absorbing diffusion against
# the causal transformer as the prior over the same VQ-VAE's codes (one autoencoder run, two priors).
set -euo pipefail
what=$1
out=${2:-runs/hybrids}
data=${DEEPGEN_DATA:-../shared/data}
dg=${DEEPGEN:-deepgen}
mkdir -p "$out"
case $what in
digits)  # compare trains both stages of latent-diffusion (training_stages), 3,000 steps each
  $dg compare --data digits --models vae,latent-diffusion -o vae.latent_dim=8 --steps 3000 --threads 1 \
    --out "$out/digits" --overwrite -s latent-diffusion.sampler=ddim -s latent-diffusion.steps=50
  run="$out/digits/runs/latent-diffusion"
  for s in "sampler=ancestral" "sampler=ddim steps=20" "sampler=ddim steps=50" "sampler=dpm steps=20"; do
    opts=(); for kv in $s; do opts+=(-s "$kv"); done
    $dg eval "$run" -q "${opts[@]}" --out "$out/digits/ldm_eval_${s// /_}.json"
  done
  ;;
mnist)  # stage 1 is the conv VAE (latent 16, N(0, I) prior): its eval is the VAE's row; then the DDPM prior
  steps=${HYBRID_STEPS:-5000}
  mn=(--data mnist --data-dir "$data" --threads 1 -q --steps "$steps" --batch-size 64 --eval-every 0)
  $dg train latent-diffusion "${mn[@]}" -o latent_dim=16 --out "$out/ldm-ae-mnist" --overwrite
  $dg train latent-diffusion "${mn[@]}" -o latent_dim=16 -o stage=prior --init-from "$out/ldm-ae-mnist:autoencoder" \
    --out "$out/ldm-mnist" --overwrite
  $dg eval "$out/ldm-ae-mnist" --features deepgen-mnist --n-samples 5000 -q
  $dg eval "$out/ldm-mnist" --features deepgen-mnist --n-samples 5000 -q -s sampler=ddim -s steps=50
  ;;
absorbing-digits|absorbing-mnist)
  if [ "$what" = absorbing-digits ]; then
    d=(--data digits --threads 1 -q --steps "${HYBRID_STEPS:-3000}" --batch-size 64 --eval-every 0); tag=digits; f=()
  else
    d=(--data mnist --data-dir "$data" --threads 1 -q --steps "${HYBRID_STEPS:-5000}" --batch-size 64 --eval-every 0)
    tag=mnist; f=(--features deepgen-mnist --n-samples 2000)
  fi
  $dg train vqvae "${d[@]}" --out "$out/vq-ae-$tag" --overwrite
  $dg train vqvae "${d[@]}" -o stage=prior --init-from "$out/vq-ae-$tag:autoencoder" --out "$out/vq-ar-$tag" --overwrite
  $dg train absorbing-vq "${d[@]}" -o stage=prior --init-from "$out/vq-ae-$tag:autoencoder" \
    --out "$out/vq-absorbing-$tag" --overwrite
  # the same prior trained on Unleashing Transformers' reweighted objective instead of the ELBO
  $dg train absorbing-vq "${d[@]}" -o stage=prior -o prior_loss=reweighted \
    --init-from "$out/vq-ae-$tag:autoencoder" --out "$out/vq-absorbing-rw-$tag" --overwrite
  $dg eval "$out/vq-ar-$tag" -q "${f[@]}"
  for run in vq-absorbing-$tag vq-absorbing-rw-$tag; do
    for steps in 1 2 4 8 16 49; do
      $dg eval "$out/$run" -q "${f[@]}" -s steps="$steps" --out "$out/$run/eval_steps$steps.json" \
        2>/dev/null || break  # steps beyond the number of codes are refused
    done
  done
  ;;
*) echo "unknown section $what" >&2; exit 2 ;;
esac
