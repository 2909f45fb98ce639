# CamVid day -> dusk (camvidday2dusk_128x128.py) with validation on CamVid's val split (101 day
# frames of sequence 0016E5) instead of the dusk test frames: the learning curves that choose a
# schedule never see the reported frames. The test loader keeps the 62 dusk test frames, scored
# once at the end (tools/test.py; benchmarks/converged.py).
_base_ = ['./camvidday2dusk_128x128.py']
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CamVidDataset',
        data_root=_base_.data_root,
        split='val',
        resize=_base_.img_size,
    )
)
