# DACS + rare-class sampling of the source images (DAFormer's data side, Hoyer et al., CVPR 2022:
# lhoyer/DAFormer mmseg/datasets/uda_dataset.py, rare_class_sampling=dict(min_pixels=3000,
# class_temp=0.01, min_crop_ratio=0.5)) on CamVid day -> dusk, otherwise exactly the DACS
# CamVid leaf. The statistics file comes first:
#   CAMVID_ROOT=../shared/data/camvid python tools/compute_rcs_stats.py \
#       configs/dacs/dacs-rcs_unet-resnet18_200_camvidday2dusk-128x128.py \
#       --out work_dirs/rcs_stats_camvid.json --at dataset
# min_pixels: 3000 pixels of a 1280x720 frame is 0.33 % of it; the same share of a 180x240
# CamVid frame (the loaded size, hence --at dataset) is 140 pixels. (DAFormer counts its 3000 on
# the original 1914x1052 GTA5 labels, 0.15 %: docs/fidelity.md.) The 128x128 crop is redrawn
# (up to 10 times) until it holds min_crop_ratio x 140 pixels of the sampled class.
_base_ = ['./dacs_unet-resnet18_200_camvidday2dusk-128x128.py']
rcs_stats = '{{$RCS_STATS:work_dirs/rcs_stats_camvid.json}}'
rcs_min_pixels = 140
train_dataloader = dict(
    sampler=dict(
        _delete_=True,
        type='RareClassSampler',
        stats_file=rcs_stats,
        branch='source',
        temperature=0.01,  # DAFormer class_temp
        min_pixels=rcs_min_pixels,
        shuffle=True,
    ),
    dataset=dict(
        branches=dict(
            source=dict(
                _delete_=True,
                type='RareClassCrop',
                dataset=_base_.source_train,
                min_pixels=rcs_min_pixels,
                min_crop_ratio=0.5,  # DAFormer min_crop_ratio
                max_recrops=10,  # DAFormer get_rare_class_sample: up to 10 crops
            )
        )
    ),
)
