# DAFormer-style DACS on GTA5 -> Cityscapes: the MiT-B5 DACS leaf (DAFormer's network; AdamW
# 6e-5, head lr x10, 1500-iteration warm-up + poly, 40k iterations, batch 2, EMA 0.999,
# pseudo-label margins 15 / 120) + rare-class sampling of the GTA5 images (lhoyer/DAFormer
# mmseg/datasets/uda_dataset.py; rare_class_sampling=dict(min_pixels=3000, class_temp=0.01,
# min_crop_ratio=0.5) in configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_
# mitb5_s0.py). Still not the full DAFormer (68.3 mIoU): no ImageNet feature distance. The
# statistics come first (GTA5 labels counted at their original 1914x1052, where DAFormer's
# min_pixels is counted: lhoyer/MIC seg/tools/convert_datasets/gta.py:41-48; the crop check is
# on the 1280x720 crops):
#   python tools/compute_rcs_stats.py \
#       configs/dacs/dacs-rcs_segformer-mit-b5_40k_gta2cityscapes-512x512.py \
#       --out work_dirs/rcs_stats_gta5.json
# Needs the data (GTA5_ROOT, CITYSCAPES_ROOT) and a GPU; not runnable on the CPU here.
_base_ = ['./dacs_segformer-mit-b5_40k_gta2cityscapes-512x512.py']
rcs_stats = '{{$RCS_STATS:work_dirs/rcs_stats_gta5.json}}'
rcs_min_pixels = 3000
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
