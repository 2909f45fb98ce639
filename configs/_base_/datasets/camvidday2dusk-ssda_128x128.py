# CamVid day -> dusk with a few labelled dusk frames (semi-supervised domain adaptation, issue
# 21): the day source (camvidday2dusk_128x128.py), the 62 dusk train frames split by UniMatch-
# format split files into a labelled part (branch `target_labeled`) and an unlabelled part
# (branch `target`, labels dropped), scored on the 62 dusk test frames as every CamVid
# day -> dusk run. The split files (splits/camvid_dusk/1_16: 4 frames, 1_8: 8 frames) were drawn
# once, class-balanced with split seed 0, so every class has labelled pixels:
# uda.data.splits.split_indices + write_split_files over the train 0001TP frames.
_base_ = ['./camvidday2dusk_128x128.py']
split_dir = '{{ fileDirname }}/../../../splits/camvid_dusk/1_16'
dusk_train = dict(_base_.target_train, with_label=True)
train_dataloader = dict(
    dataset=dict(
        branches=dict(
            target=dict(
                _delete_=True,
                type='SemiSplit',
                dataset=dusk_train,
                part='unlabeled',
                split_dir=split_dir,
                seed_offset=1,
            ),
            target_labeled=dict(
                type='SemiSplit',
                dataset=dusk_train,
                part='labeled',
                split_dir=split_dir,
                seed_offset=2,
            ),
        )
    )
)
