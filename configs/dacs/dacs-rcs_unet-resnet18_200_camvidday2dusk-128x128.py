# DACS + rare-class sampling of the source images (configs/_base_/methods/rcs.py: DAFormer's
# data side) on CamVid day -> dusk, otherwise exactly the DACS
# CamVid leaf. The statistics file comes first:
#   CAMVID_ROOT=../shared/data/camvid python tools/compute_rcs_stats.py \
#       configs/dacs/dacs-rcs_unet-resnet18_200_camvidday2dusk-128x128.py \
#       --out work_dirs/rcs_stats_camvid.json --at dataset
# min_pixels: 3000 pixels of a 1280x720 frame is 0.33 % of it; the same share of a 180x240
# CamVid frame (the loaded size, hence --at dataset) is 140 pixels. (DAFormer counts its 3000 on
# the original 1914x1052 GTA5 labels, 0.15 %: docs/fidelity.md.) The 128x128 crop is redrawn
# (up to 10 times) until it holds min_crop_ratio x 140 pixels of the sampled class.
_base_ = ['./dacs_unet-resnet18_200_camvidday2dusk-128x128.py', '../_base_/methods/rcs.py']
rcs_stats = '{{$RCS_STATS:work_dirs/rcs_stats_camvid.json}}'
rcs_min_pixels = 140
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
