# DACS + rare-class sampling of the source images (configs/_base_/methods/rcs.py: DAFormer's
# data side) on the built-in synthetic shift, otherwise exactly the DACS demo
# (200 ABN warm-up iterations, then ClassMix). The statistics file comes first:
#   python tools/compute_rcs_stats.py \
#       configs/dacs/dacs-rcs_unet-resnet18_400_synthetic-96x192.py \
#       --out work_dirs/rcs_stats_synthetic.json
# min_pixels: 3000 pixels of a 1280x720 frame is 0.33 % of it (DAFormer counts them on 1914x1052
# GTA5 labels, 0.15 %: docs/fidelity.md); the same 0.33 % of
# a 96x192 scene is 60 pixels (persons and traffic signs here are at most about 100 pixels).
# The scenes are not cropped (flip only), so the re-crop rule has nothing to retry.
_base_ = ['./dacs_unet-resnet18_400_synthetic-96x192.py', '../_base_/methods/rcs.py']
rcs_stats = '{{$RCS_STATS:work_dirs/rcs_stats_synthetic.json}}'
rcs_min_pixels = 60
train_dataloader = dict(
    sampler=dict(
        _base_.rcs_sampler, _delete_=True, stats_file=rcs_stats, min_pixels=rcs_min_pixels
    ),
    dataset=dict(
        branches=dict(
            source=dict(
                _base_.rcs_crop,
                _delete_=True,
                dataset=_base_.source_train,
                min_pixels=rcs_min_pixels,
            )
        )
    ),
)
