"""The `lbaecodec` command line: one module per family of commands, each parsing options and
calling the library. Modules import click only at the top, torch inside the commands, so that
--help, info and models start fast."""

from __future__ import annotations

import click

from . import bench, codec, export, generate, info, postfilter, prior, stages, train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lbaecodec")
def main() -> None:
    """lbaecodec: tiny-bitrate learned image compression (Latent Bernoulli Autoencoder).

    \b
    Compress and restore:   lbaecodec encode photo.png photo.lbae
                            lbaecodec decode photo.lbae photo.rec.png
    Inspect:                lbaecodec info photo.lbae ; lbaecodec models
    """


for command in (
    codec.encode,
    codec.decode,
    info.info,
    info.models,
    train.train_cmd,
    export.export_cmd,
    export.add_decoder_cmd,
    prior.add_prior_cmd,
    postfilter.add_postfilter_cmd,
    stages.stage_data_cmd,
    stages.add_stage_cmd,
    export.export_onnx_cmd,
    bench.evaluate_cmd,
    bench.bench_cmd,
    generate.sample_cmd,
    generate.interpolate_cmd,
    generate.edit_cmd,
):
    main.add_command(command)
