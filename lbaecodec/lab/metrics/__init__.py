"""Quality metrics: FID (Inception-v3 features + Fréchet distance), PSNR and SSIM."""
