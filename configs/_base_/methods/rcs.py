# Rare-class sampling of the source images (DAFormer's data side, Hoyer et al., CVPR 2022:
# lhoyer/DAFormer mmseg/datasets/uda_dataset.py; rare_class_sampling=dict(min_pixels=3000,
# class_temp=0.01, min_crop_ratio=0.5) in configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_
# a999_daformer_mitb5_s0.py). A source image is drawn for a class sampled with probability
# softmax((1 - f_c) / T) over the class frequencies f_c, and its crop is redrawn until it
# holds min_crop_ratio x min_pixels of that class. The method's parts are variables that the
# DACS + RCS leaves compose with their dataset's statistics file and pixel threshold
# (min_pixels scales with the frame size, so it stays in the leaf):
#   train_dataloader = dict(
#       sampler=dict(rcs_sampler, _delete_=True, stats_file=..., min_pixels=...),
#       dataset=dict(branches=dict(source=dict(
#           rcs_crop, _delete_=True, dataset=source_train, min_pixels=...))))
rcs_sampler = dict(
    type='RareClassSampler',
    branch='source',
    temperature=0.01,  # DAFormer class_temp
    shuffle=True,
)
rcs_crop = dict(
    type='RareClassCrop',
    min_crop_ratio=0.5,  # DAFormer min_crop_ratio
    max_recrops=10,  # DAFormer get_rare_class_sample: up to 10 crops
)
