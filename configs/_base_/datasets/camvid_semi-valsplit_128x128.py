# Semi-supervised CamVid (camvid_semi_128x128.py) validated on CamVid's val split (101 frames
# of 0016E5) instead of the 233 test frames: the learning curves that choose a schedule never
# see the reported frames. The test loader keeps the test frames, scored once at the end
# (benchmarks/converged.py).
_base_ = ['./camvid_semi_128x128.py']
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CamVidDataset',
        data_root=_base_.data_root,
        split='val',
        resize=_base_.img_size,
    )
)
