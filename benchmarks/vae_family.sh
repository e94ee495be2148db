#!/usr/bin/env bash
# The VAE family's benchmarks (issue 10), one section per argument, each at 1 thread:
#   bash benchmarks/vae_family.sh digits|vae|vae-static|iwae|vqvae|hvae [OUT]
# OUT defaults to runs/vae-family; MNIST comes from $DEEPGEN_DATA (or ../shared/data).
# The VAE's and IWAE's MNIST evaluations are importance sampling with K = 5000 on the seeded 1,000 of the 10,000
# test images that `deepgen eval` takes by default (--full would take all 10,000).
set -euo pipefail
what=$1
out=${2:-runs/vae-family}
data=${DEEPGEN_DATA:-../shared/data}
dg=${DEEPGEN:-deepgen}
mkdir -p "$out"
mn=(--data mnist --data-dir "$data" --threads 1 -q)
case $what in
digits)  # compare trains both of vqvae's stages (training_stages)
  $dg compare --data digits --models vae,iwae,gumbel-vae,vqvae,hvae --steps 1500 --threads 1 --out "$out/digits" --overwrite
  ;;
vae)  # one stochastic layer (50 units), 2 x 200 deterministic (Burda et al. 2016), dynamic binarisation
  # the longer run of docs/benchmarks.md 13.2: VAE_STEPS=200000 VAE_EVAL_EVERY=40000 VAE_SUFFIX=-long
  steps=${VAE_STEPS:-60000}
  run="$out/vae-mnist${VAE_SUFFIX:-}"
  $dg train vae "${mn[@]}" --binarize dynamic --steps "$steps" --batch-size 100 --lr 1e-3 --lr-schedule cosine \
    --eval-every "${VAE_EVAL_EVERY:-10000}" -o arch=mlp -o latent_dim=50 -o hidden=200,200 --out "$run" --overwrite
  $dg eval "$run" --k 5000 -q
  ;;
vae-static)  # the same VAE on the static binarised split (Larochelle's 50k/10k/10k), which it overfits:
  # constant lr, early stopping on the validation ELBO (patience 4 evaluations = 40 epochs), evaluated at best.pt
  run="$out/vae-static"
  $dg train vae --data binarized-mnist --data-dir "$data" --threads 1 -q --steps "${VAE_STEPS:-200000}" \
    --batch-size 100 --lr 1e-3 --eval-every 5000 --patience "${VAE_PATIENCE:-4}" \
    -o arch=mlp -o latent_dim=50 -o hidden=200,200 --out "$run" --overwrite
  $dg eval "$run/best.pt" --k 5000 -q --out "$run/eval.json"
  ;;
iwae)
  $dg train iwae "${mn[@]}" --binarize dynamic --steps "${IWAE_STEPS:-12000}" --batch-size 100 --lr 1e-3 \
    --lr-schedule cosine --eval-every 3000 -o arch=mlp -o latent_dim=50 -o hidden=200,200 -o k=50 \
    --out "$out/iwae-mnist" --overwrite
  $dg eval "$out/iwae-mnist" --k 5000 -q
  ;;
vqvae)  # 7x7 grid of 64 codes; then the transformer prior over the grid
  $dg train vqvae "${mn[@]}" --steps 6000 --batch-size 64 --eval-every 2000 --out "$out/vq-ae-mnist" --overwrite
  $dg train vqvae "${mn[@]}" --steps 6000 --batch-size 64 --eval-every 2000 -o stage=prior \
    --init-from "$out/vq-ae-mnist:autoencoder" --out "$out/vq-prior-mnist" --overwrite
  $dg eval "$out/vq-prior-mnist" --features deepgen-mnist -q
  ;;
hvae)  # the KL warm-up ablation of docs 13.2: HVAE_STEPS=1500 HVAE_EVAL=0, with HVAE_OPTS="-o kl_warmup=500"
  # and HVAE_SUFFIX=-warmup for the second run
  run="$out/hvae-mnist${HVAE_SUFFIX:-}"
  # shellcheck disable=SC2086  # HVAE_OPTS holds several words
  $dg train hvae "${mn[@]}" --binarize dynamic --steps "${HVAE_STEPS:-2500}" --batch-size 64 --lr 1e-3 \
    --lr-schedule cosine --warmup-steps 100 --eval-every 500 -o width=32 ${HVAE_OPTS:-} --out "$run" --overwrite
  # K = 5000 would take hours on 2 CPU cores for this network: the default K = 100
  if [ "${HVAE_EVAL:-1}" = 1 ]; then $dg eval "$run" -q; fi
  ;;
*) echo "unknown section $what" >&2; exit 2 ;;
esac
