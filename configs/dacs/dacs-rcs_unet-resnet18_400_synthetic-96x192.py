# DACS + rare-class sampling of the source images (DAFormer's data side, Hoyer et al., CVPR 2022:
# lhoyer/DAFormer mmseg/datasets/uda_dataset.py, rare_class_sampling=dict(min_pixels=3000,
# class_temp=0.01, min_crop_ratio=0.5) in configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_
# a999_daformer_mitb5_s0.py) on the built-in synthetic shift, otherwise exactly the DACS demo
# (200 ABN warm-up iterations, then ClassMix). The statistics file comes first:
#   python tools/compute_rcs_stats.py \
#       configs/dacs/dacs-rcs_unet-resnet18_400_synthetic-96x192.py \
#       --out work_dirs/rcs_stats_synthetic.json
# min_pixels: 3000 pixels of a 1280x720 frame is 0.33 % of it (DAFormer counts them on 1914x1052
# GTA5 labels, 0.15 %: docs/fidelity.md); the same 0.33 % of
# a 96x192 scene is 60 pixels (persons and traffic signs here are at most about 100 pixels).
# The scenes are not cropped (flip only), so the re-crop rule has nothing to retry.
_base_ = ['./dacs_unet-resnet18_400_synthetic-96x192.py']
rcs_stats = '{{$RCS_STATS:work_dirs/rcs_stats_synthetic.json}}'
rcs_min_pixels = 60
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
