# CamVid -> Cityscapes: labelled CamVid train (367 frames, 480x360; labels mapped onto
# Cityscapes trainIds by label_maps/camvid11_to_cityscapes19) to unlabelled Cityscapes train
# (resized to 1024x512); target val = Cityscapes val at 1024x512. The network predicts 19
# classes but CamVid labels only 11 of them, so the mIoU is over those 11 shared classes
# (protocol camvid11_in_cityscapes19). Roots: CAMVID_ROOT, CITYSCAPES_ROOT.
camvid_root = '{{$CAMVID_ROOT:data/camvid}}'
cityscapes_root = '{{$CITYSCAPES_ROOT:data/cityscapes}}'
num_classes = 19
crop_size = (320, 320)
train_pipeline = [
    dict(type='RandomCrop', height=crop_size[0], width=crop_size[1]),
    dict(type='HorizontalFlip', p=0.5),
]
source_train = dict(
    type='CamVidDataset',
    data_root=camvid_root,
    split='train',
    protocol='cityscapes19',
    label_map='camvid11_to_cityscapes19',
    pipeline=train_pipeline,
)
target_train = dict(
    type='CityscapesDataset',
    data_root=cityscapes_root,
    split='train',
    with_label=False,
    resize=(512, 1024),
    pipeline=train_pipeline,
)
target_val = dict(
    type='CityscapesDataset', data_root=cityscapes_root, split='val', resize=(512, 1024)
)
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='MultiBranchInfiniteSampler', shuffle=True),
    collate_fn=dict(type='uda_collate'),
    dataset=dict(
        type='MultiBranchDataset', branches=dict(source=source_train, target=target_train)
    ),
)
val_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='uda_collate'),
    dataset=target_val,
)
test_dataloader = val_dataloader
val_evaluator = dict(
    type='IoUMetric', protocol='cityscapes19', eval_protocol='camvid11_in_cityscapes19'
)
test_evaluator = val_evaluator
# Slide windows for `tools/test.py --mode slide` (uda.evaluation.inference.resolve_test_cfg):
# the training crop, stride 2/3 of it as mmseg; model.test_cfg overrides them.
inference_cfg = dict(crop_size=crop_size, stride=(213, 213))
