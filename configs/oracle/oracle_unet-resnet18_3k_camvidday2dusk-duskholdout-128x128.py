# Schedule check of the converged target oracle (issue 21): CamVid's val split holds day frames
# only (sequence 0016E5), so it cannot say when an oracle trained on dusk frames stops
# improving on dusk. This leaf trains the oracle of
# configs/oracle/oracle_unet-resnet18_3k_camvidday2dusk-128x128.py on 50 of the 62 labelled dusk
# train frames (splits/camvid_dusk/holdout/train.txt: the first 50 by frame number) and
# validates every 250 iterations on the other 12 (holdout/val.txt: the last 12, a contiguous
# stretch of the drive, so validation frames are not the neighbours of training frames). The
# reported oracle keeps all 62 frames; the dusk test frames are scored once, as for every
# converged run (benchmarks/converged.py --only oracle-holdout).
_base_ = ['./oracle_unet-resnet18_3k_camvidday2dusk-128x128.py']
holdout = '{{ fileDirname }}/../../splits/camvid_dusk/holdout'
dusk_labelled = dict(_base_.target_train, with_label=True)
train_dataloader = dict(
    dataset=dict(
        branches=dict(
            _delete_=True,
            source=dict(
                type='SemiSplit',
                dataset=dusk_labelled,
                part='labeled',
                split_file=holdout + '/train.txt',
            ),
        )
    )
)
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='SemiSplit',
        dataset=dict(_base_.target_train, with_label=True, pipeline=[]),
        part='labeled',
        split_file=holdout + '/val.txt',
    )
)
