# SAC + 1/8 of the dusk train frames labelled (semi-supervised domain adaptation, issue 21),
# warm-started from a converged ABN checkpoint like configs/sac/sac_unet-resnet18_1k_*:
#   --cfg-options load_from=$(python benchmarks/converged.py --checkpoint ABN --seeds 0 | tail -n 1)
_base_ = [
    '../_base_/models/unet_resnet18.py',
    '../_base_/datasets/camvidday2dusk-ssda_128x128.py',  # + target_labeled branch
    '../_base_/methods/sac_ssda.py',  # SAC + CE on the labelled dusk frames
    '../_base_/schedules/adamw_poly_1k.py',
]
model = dict(
    segmentor=dict(_base_.segmentor, num_classes=_base_.num_classes),
    data_preprocessor=_base_.data_preprocessor,
    labellers=dict(sac=dict(num_images=2)),
)
train_cfg = dict(val_interval=1000)
# 1/8: ceil(62 / 8) = 8 labelled dusk frames (splits/camvid_dusk/1_8).
split_dir = '{{ fileDirname }}/../../splits/camvid_dusk/1_8'
train_dataloader = dict(
    dataset=dict(
        branches=dict(target_labeled=dict(split_dir=split_dir), target=dict(split_dir=split_dir))
    )
)
